/* Where a backup's time goes: each phase's wall time on the monotonic
 * clock, kept in the manifest (timings) and said by --verbose, so a slow
 * point shows which step to look at (issue 20's "find where the time
 * goes"). */
#ifndef SP_PHASES_H
#define SP_PHASES_H

#include "log.h"
#include "manifest.h"

/* The phases after manifest.json, which the manifest cannot hold. */
struct phases_tail {
  double sums_ms;   /* SHA256SUMS written */
  double dirs_ms;   /* the point's directories fsynced */
  double rename_ms; /* <id>.partial renamed to <id>, its directory fsynced */
  double job_wait_ms; /* the backup job seen gone, after the rename */
};

/* Milliseconds on the monotonic clock, with fractions. */
double phases_now(void);
/* One debug line: every phase, its share of the total, the slowest disk. */
void phases_log(const struct sp_log *log, const struct sp_manifest *m,
                const struct phases_tail *tail, double total_ms);

#endif
