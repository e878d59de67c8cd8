/* Guest file system freeze through the QEMU guest agent, around the pause
 * window (freeze -> pause -> ... -> resume -> thaw: the agent needs
 * running vCPUs).
 *
 * Time bounds (Windows VSS holds writes for at most 10 s):
 * - every agent call is bounded by freeze_timeout_s (T), through
 *   virDomainAgentSetResponseTimeout for the freeze..thaw span and a
 *   per-call timeout for guest-fsfreeze-status;
 * - an agent that does not answer guest-fsfreeze-status (hung, SIGSTOPped)
 *   gets no freeze at all: preflight asks it first, so freeze = required
 *   refuses (exit 3) before the VM is touched and auto goes on unfrozen;
 * - a freeze that got no answer within T may still be carried out later
 *   (the agent runs its commands in order once it moves again), so it is
 *   thawed like a real one: thaw is retried for 6 x T, then the guardian
 *   tries once more when the coordinator leaves.
 * A guest frozen by someone else is neither frozen nor thawed by us. */
#ifndef SP_FREEZE_H
#define SP_FREEZE_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "freeze_probe.h"
#include "guardian.h"
#include "log.h"
#include "preflight.h"

struct freeze {
  bool frozen;          /* we froze it (or may have): we thaw it */
  bool uncertain;       /* the freeze got no answer in time */
  int count;            /* file systems frozen (what the agent answered) */
  int thawed;           /* file systems thawed */
  int timeout_s;        /* freeze_timeout_s */
  long long t_freeze, t_thaw; /* monotonic ms */
  char freeze_at[32], thaw_at[32];
  char note[512];       /* what happened instead of a plain freeze, for the manifest */
};

int freeze_guest(virDomainPtr dom, const struct sp_config *cfg, const struct preflight *pf,
                 struct guardian *g, struct freeze *f, const struct sp_log *log,
                 struct sp_err *e);
/* Thaws what freeze_guest froze (or may have frozen); retried for 6 x
 * freeze_timeout_s before giving up (the guardian then tries again when
 * it is told to quit). */
int thaw_guest(virDomainPtr dom, struct guardian *g, struct freeze *f, const struct sp_log *log,
               struct sp_err *e);
double freeze_ms(const struct freeze *f);

#endif
