/* The libvirt connection and domain handles, with errors a user can act
 * on ("is libvirtd running?") instead of libvirt's own printing. */
#ifndef SP_VIRT_H
#define SP_VIRT_H

#include <libvirt/libvirt.h>

#include "err.h"

#define SP_DEFAULT_URI "qemu:///system"

static inline void virt_connp(virConnectPtr *c) { if (*c) virConnectClose(*c); }
static inline void virt_domp(virDomainPtr *d) { if (*d) virDomainFree(*d); }
static inline void virt_cpp(virDomainCheckpointPtr *c) { if (*c) virDomainCheckpointFree(*c); }
#define _cleanup_conn_ __attribute__((cleanup(virt_connp)))
#define _cleanup_dom_ __attribute__((cleanup(virt_domp)))
#define _cleanup_checkpoint_ __attribute__((cleanup(virt_cpp)))

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

#endif
