/* The hypervisor a command works on: this machine, or a remote one named
 * by a qemu+ssh URI.  For a remote one the SSH session (host key, login,
 * SFTP) comes first, before libvirt or any VM is touched. */
#ifndef SP_HYPERVISOR_H
#define SP_HYPERVISOR_H

#include <libvirt/libvirt.h>

#include "cli.h"
#include "config.h"
#include "err.h"
#include "host.h"
#include "remote_target.h"

struct hypervisor {
  struct remote_target target;
  struct sp_host host;   /* where the state files are */
  char *uri;             /* for libvirt and the guardian (keyfile added), NULL: default */
  virConnectPtr conn;
};

/* cfg may be NULL (then only --ssh-key names a key). */
int hypervisor_open(struct hypervisor *hv, const struct cli *c, const struct sp_config *cfg,
                    struct sp_err *e);
void hypervisor_close(struct hypervisor *hv);

#endif
