/* The libvirt connection and domain handles, with errors a user can act
 * on ("is libvirtd running?") instead of libvirt's own printing. */
#ifndef SP_VIRT_H
#define SP_VIRT_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "cleanup.h"
#include "err.h"
#include "log.h"

#define SP_DEFAULT_URI "qemu:///system"

static inline void virt_connp(virConnectPtr *c) { if (*c) virConnectClose(*c); }
static inline void virt_domp(virDomainPtr *d) { if (*d) virDomainFree(*d); }
static inline void virt_cpp(virDomainCheckpointPtr *c) { if (*c) virDomainCheckpointFree(*c); }
#define _cleanup_conn_ _cleanup_(virt_connp)
#define _cleanup_dom_ _cleanup_(virt_domp)
#define _cleanup_checkpoint_ _cleanup_(virt_cpp)

/* Stops libvirt from printing errors itself; we report them. Call once. */
void virt_quiet_errors(void);
/* The last libvirt error of this thread, or "unknown libvirt error".
 * Every public libvirt call resets it, virDomainGetName included: read it
 * before calling libvirt again (never in the same argument list). */
const char *virt_errmsg(void);
int virt_errcode(void);

/* uri NULL: $LIBVIRT_DEFAULT_URI, else qemu:///system (never the session
 * daemon a non-root user would get by default). */
int virt_open(const char *uri, virConnectPtr *conn, struct sp_err *e);
int virt_lookup(virConnectPtr conn, const char *name, virDomainPtr *dom, struct sp_err *e);
/* The domain XML; flags as virDomainGetXMLDesc. */
int virt_xml(virDomainPtr dom, unsigned int flags, char **xml, struct sp_err *e);
const char *virt_state_name(int state);

/* How long a lost connection is tried again: libvirtd restarts (package
 * upgrades, log rotation) take seconds, and running VMs and their backup
 * jobs live on meanwhile. */
#define SP_RECONNECT_S 60

/* A connection and one domain handle that survive a libvirtd restart.
 * Its close callback marks it lost (libvirt calls it when the next call
 * finds the socket closed: we run no event loop); virt_link_ensure(),
 * called before each step that must reach the VM, opens the connection
 * again and looks the domain up again by UUID, every 250 ms up to
 * SP_RECONNECT_S.  *conn and *dom are the caller's and are replaced. */
struct virt_link {
  virConnectPtr *conn;
  virDomainPtr *dom;
  char *uri;
  char uuid[VIR_UUID_STRING_BUFLEN];
  bool closed;        /* set by the close callback */
  bool registered;
  const struct sp_log *log;
  const char *who;    /* "" or "guardian: ", for the log */
};

/* uri NULL: the connection's own. */
int virt_link_init(struct virt_link *l, virConnectPtr *conn, virDomainPtr *dom, const char *uri,
                   const char *who, const struct sp_log *log, struct sp_err *e);
/* 0: the connection answers (reopened if it had been lost); -1 when
 * libvirtd did not come back within SP_RECONNECT_S. */
int virt_link_ensure(struct virt_link *l, struct sp_err *e);
void virt_link_free(struct virt_link *l);

#endif
