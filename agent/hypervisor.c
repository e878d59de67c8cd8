#include "hypervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote_host.h"
#include "virt.h"

int hypervisor_open(struct hypervisor *hv, const struct cli *c, const struct sp_config *cfg,
                    struct sp_err *e)
{
  memset(hv, 0, sizeof *hv);
  const char *key = c->ssh_key ? c->ssh_key : cfg ? sp_config_str(cfg, SP_KEY_SSH_KEY) : NULL;
  if (remote_target_parse(c->uri, key, &hv->target, e) < 0)
    return -1;
  if (!hv->target.remote)
    sp_host_local(&hv->host);
  else if (remote_host_open(&hv->host, &hv->target, e) < 0)
    return -1;
  if (c->uri)
    hv->uri = remote_target_libvirt_uri(c->uri, &hv->target);
  return virt_open(hv->uri, &hv->conn, e);
}

void hypervisor_close(struct hypervisor *hv)
{
  if (hv->conn)
    virConnectClose(hv->conn);
  hv->conn = NULL;
  sp_host_close(&hv->host);
  free(hv->uri);
  hv->uri = NULL;
}
