#include "phases.h"

#include <time.h>

double phases_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void phases_log(const struct sp_log *log, const struct sp_manifest *m,
                const struct phases_tail *tail, double total_ms)
{
  const struct sp_manifest_timings *t = &m->timings;
  double slowest = 0;
  const char *which = "-";
  for (size_t i = 0; i < m->ndisks; i++)
    if (m->disks[i].seconds >= slowest) {
      slowest = m->disks[i].seconds;
      which = m->disks[i].target;
    }
  sp_debug(log, "phases (ms): prepare %.1f, window %.1f, state %.1f, copy %.1f (slowest disk %s "
           "%.1f), job end %.1f, check %.1f, hash %.1f, fsync %.1f, SHA256SUMS %.1f, directory "
           "fsyncs %.1f, rename %.1f, job gone %.1f; total %.1f", t->prepare_ms, t->window_ms, t->state_ms,
           t->copy_ms, which, slowest * 1e3, t->job_end_ms, t->check_ms, t->hash_ms, t->fsync_ms,
           tail->sums_ms, tail->dirs_ms, tail->rename_ms, tail->job_wait_ms, total_ms);
}
