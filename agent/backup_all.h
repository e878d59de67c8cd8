/* stillpoint backup --all: every running VM whose policy has enabled = yes,
 * each in its own `stillpoint backup` process (its own lock, guardian and
 * exit code), max_parallel_vms at a time.  One failing VM does not stop
 * the others; the exit code is 0 only when every one succeeded. */
#ifndef SP_BACKUP_ALL_H
#define SP_BACKUP_ALL_H

#include "cli.h"

int backup_all(const struct cli *c, const char *level, const char *target);

#endif
