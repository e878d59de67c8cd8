#include "copy_parallel.h"

/* Measured on a 2-CPU host, two disks (docs/facts.md, "Timings"): each
 * copier pays ≈ 150 ms before its first byte moves (the shell, qemu-img
 * info and create, qemu-nbd's start), which copiers side by side pay once:
 * an incremental with parallel 4 took 0.89× the time of parallel 1.  A
 * whole disk's copy keeps the CPUs busy by itself (QEMU's NBD server
 * included), and a second one beside it only competes: a full point took
 * 1.12×.  So auto overlaps the starts of copies that move little data,
 * and keeps a whole disk's copy alone. */
long copy_parallel(long configured, const enum sp_level *levels, size_t n)
{
  if (configured > 0)
    return configured;
  for (size_t i = 0; i < n; i++)
    if (levels[i] == SP_LEVEL_FULL)
      return 1;
  if (n < 1)
    return 1;
  return n < COPY_PARALLEL_AUTO_MAX ? (long)n : COPY_PARALLEL_AUTO_MAX;
}
