#include "virt.h"

#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void silent(void *opaque, virErrorPtr err)
{
  (void)opaque;
  (void)err;
}

void virt_quiet_errors(void)
{
  virSetErrorFunc(NULL, silent);
}

const char *virt_errmsg(void)
{
  const char *m = virGetLastErrorMessage();
  return m ? m : "unknown libvirt error";
}

int virt_errcode(void)
{
  virErrorPtr err = virGetLastError();
  return err ? err->code : VIR_ERR_OK;
}

int virt_open(const char *uri, virConnectPtr *conn, struct sp_err *e)
{
  if (!uri)
    uri = getenv("LIBVIRT_DEFAULT_URI");
  if (!uri || !*uri)
    uri = SP_DEFAULT_URI;
  *conn = virConnectOpen(uri);
  if (*conn)
    return 0;
  virErrorPtr err = virGetLastError();
  /* Only a failure to reach the daemon earns the "start it" hint. */
  bool daemon = err && (err->domain == VIR_FROM_RPC || err->code == VIR_ERR_NO_CONNECT);
  return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot connect to libvirt at %s: %s%s", uri,
                    virt_errmsg(),
                    daemon ? ". Is libvirtd running? Start it with `systemctl start libvirtd` "
                             "(without systemd: `virtlogd -d; libvirtd -d`)"
                           : "");
}

int virt_lookup(virConnectPtr conn, const char *name, virDomainPtr *dom, struct sp_err *e)
{
  *dom = virDomainLookupByName(conn, name);
  if (!*dom) {
    if (virt_errcode() == VIR_ERR_NO_DOMAIN) {
      char *uri = virConnectGetURI(conn);
      int r = sp_err_set(e, SP_EXIT_PREFLIGHT,
                         "domain '%s' not found at %s (`virsh -c %s list --all` lists the "
                         "defined domains)", name, uri ? uri : "?", uri ? uri : "?");
      free(uri);
      return r;
    }
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot look up domain '%s': %s", name,
                      virt_errmsg());
  }
  return 0;
}

int virt_xml(virDomainPtr dom, unsigned int flags, char **xml, struct sp_err *e)
{
  const char *name = virDomainGetName(dom);
  *xml = virDomainGetXMLDesc(dom, flags);
  if (!*xml)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot read the XML of domain %s: %s",
                      name, virt_errmsg());
  return 0;
}

const char *virt_state_name(int state)
{
  switch (state) {
  case VIR_DOMAIN_RUNNING: return "running";
  case VIR_DOMAIN_BLOCKED: return "blocked";
  case VIR_DOMAIN_PAUSED: return "paused";
  case VIR_DOMAIN_SHUTDOWN: return "shutting down";
  case VIR_DOMAIN_SHUTOFF: return "shut off";
  case VIR_DOMAIN_CRASHED: return "crashed";
  case VIR_DOMAIN_PMSUSPENDED: return "suspended by guest power management";
  default: return "no state";
  }
}
