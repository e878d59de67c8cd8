/* Guest file system freeze through the QEMU guest agent, around the pause
 * window (freeze -> pause -> ... -> resume -> thaw: the agent needs
 * running vCPUs).  The agent's answer time is bounded by freeze_timeout_s
 * so the whole freeze..thaw span stays well under the 10 s Windows VSS
 * holds writes. */
#ifndef SP_FREEZE_H
#define SP_FREEZE_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "guardian.h"
#include "log.h"
#include "preflight.h"

struct freeze {
  bool frozen;          /* we froze it, so we thaw it */
  int count;            /* file systems frozen */
  int thawed;           /* file systems thawed */
  long long t_freeze, t_thaw; /* monotonic ms */
  char freeze_at[32], thaw_at[32];
  char note[512];       /* what happened instead of a freeze, for the manifest */
};

int freeze_guest(virDomainPtr dom, const struct sp_config *cfg, const struct preflight *pf,
                 struct guardian *g, struct freeze *f, const struct sp_log *log,
                 struct sp_err *e);
/* Thaws what freeze_guest froze; retried for a few seconds before giving
 * up (the guardian then tries again when it is told to quit). */
int thaw_guest(virDomainPtr dom, struct guardian *g, struct freeze *f, const struct sp_log *log,
               struct sp_err *e);
double freeze_ms(const struct freeze *f);

#endif
