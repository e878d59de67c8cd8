#include "virt.h"

#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

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

/* ---- a connection that survives libvirtd restarts ------------------- */

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
  (void)conn;
  (void)reason;
  struct virt_link *l = opaque;
  l->closed = true;
}

static void link_register(struct virt_link *l)
{
  l->registered = virConnectRegisterCloseCallback(*l->conn, on_close, l, NULL) == 0;
}

static void link_unregister(struct virt_link *l)
{
  if (l->registered && *l->conn)
    (void)virConnectUnregisterCloseCallback(*l->conn, on_close);
  l->registered = false;
}

int virt_link_init(struct virt_link *l, virConnectPtr *conn, virDomainPtr *dom, const char *uri,
                   const char *who, const struct sp_log *log, struct sp_err *e)
{
  *l = (struct virt_link){ .conn = conn, .dom = dom, .log = log, .who = who ? who : "" };
  l->uri = uri ? strdup(uri) : virConnectGetURI(*conn);
  if (!l->uri || virDomainGetUUIDString(*dom, l->uuid) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot read the libvirt URI or the domain's UUID: %s",
                      virt_errmsg());
  link_register(l);
  return 0;
}

void virt_link_free(struct virt_link *l)
{
  if (l->conn)
    link_unregister(l);
  free(l->uri);
  l->uri = NULL;
}

/* Opens the connection again and looks the domain up by UUID, retrying
 * until the deadline: libvirtd may still be starting. */
static int reconnect(struct virt_link *l, struct sp_err *e)
{
  long long t0 = sp_now_ms(), deadline = t0 + SP_RECONNECT_S * 1000LL;
  char why[256] = "";
  for (;;) {
    virConnectPtr c = virConnectOpen(l->uri);
    virDomainPtr d = c ? virDomainLookupByUUIDString(c, l->uuid) : NULL;
    if (d) {
      link_unregister(l);
      if (*l->dom)
        virDomainFree(*l->dom);
      if (*l->conn)
        virConnectClose(*l->conn);
      *l->conn = c;
      *l->dom = d;
      l->closed = false;
      link_register(l);
      sp_warn(l->log, "%slibvirt connection to %s was lost (libvirtd restarted?): connected "
              "again after %lld ms", l->who, l->uri, sp_now_ms() - t0);
      return 0;
    }
    snprintf(why, sizeof why, "%s", virt_errmsg());
    if (c)
      virConnectClose(c);
    if (sp_now_ms() >= deadline)
      break;
    struct timespec ts = { 0, 250 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  return sp_err_set(e, SP_EXIT_FAILED, "%slibvirt connection to %s was lost and libvirtd did not "
                    "answer again within %d s (%s): start it (`systemctl start libvirtd`), then "
                    "check with `virsh domstate` and `virsh domjobinfo` that the VM runs and no "
                    "backup job is left", l->who, l->uri, SP_RECONNECT_S, why);
}

int virt_link_ensure(struct virt_link *l, struct sp_err *e)
{
  unsigned long v;
  if (!l->uri)
    return 0; /* never set up: nothing to keep alive */
  if (!l->closed && virConnectGetLibVersion(*l->conn, &v) == 0)
    return 0;
  /* Only a lost connection is opened again; any other failure of this
   * harmless call is the next step's to report. */
  if (!l->closed && virt_errcode() != VIR_ERR_INVALID_CONN) {
    virErrorPtr err = virGetLastError();
    if (!err || err->domain != VIR_FROM_RPC)
      return 0;
  }
  return reconnect(l, e);
}
