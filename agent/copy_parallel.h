/* How many copiers of one point run at once (policy key `parallel`),
 * decided from the policy and the plan alone (no libvirt, no file, no
 * clock): tests/unit/test_copy_parallel.c proves each rule. */
#ifndef SP_COPY_PARALLEL_H
#define SP_COPY_PARALLEL_H

#include <stddef.h>

#include "level.h"

/* At most this many copiers at once under parallel = auto. */
#define COPY_PARALLEL_AUTO_MAX 4

/* configured: sp_config_int() of `parallel`, 0 for auto.  levels: how
 * each of the n disks is copied.  An explicit count is kept as it is;
 * auto copies every disk at once (up to COPY_PARALLEL_AUTO_MAX) when none
 * is copied whole, and one at a time otherwise.  At least 1. */
long copy_parallel(long configured, const enum sp_level *levels, size_t n);

#endif
