/* Asking the guest agent whether the guest is frozen, with a bound on its
 * answer time: what preflight asks first and freeze.c asks again right
 * before a freeze.  A module of its own so that preflight does not depend
 * on the freeze, which depends on preflight's result. */
#ifndef SP_FREEZE_PROBE_H
#define SP_FREEZE_PROBE_H

#include <libvirt/libvirt.h>
#include <stddef.h>

#include "log.h"

/* What the guest agent answered to guest-fsfreeze-status in preflight
 * (asked only when freeze != off and the VM runs with an agent connected). */
enum pf_agent {
  PF_AGENT_NOT_ASKED,
  PF_AGENT_THAWED,
  PF_AGENT_FROZEN,    /* frozen by someone else */
  PF_AGENT_SILENT,    /* no answer within freeze_timeout_s: hung or stopped */
  PF_AGENT_NO_FREEZE, /* answered with an error: it cannot freeze */
};

/* guest-fsfreeze-status, answered within timeout_s or not at all; a reason
 * for anything but THAWED/FROZEN goes to why.  Leaves the domain's agent
 * response timeout at libvirt's default. */
enum pf_agent freeze_probe(virDomainPtr dom, int timeout_s, char *why, size_t n);

/* Bounds the domain's guest agent answers to timeout_s (warned on log when
 * that fails; log may be NULL), and back to libvirt's default. */
void freeze_agent_bound(virDomainPtr dom, int timeout_s, const struct sp_log *log);
void freeze_agent_unbound(virDomainPtr dom);

#endif
