/* One stillpoint at a time per VM: an flock on /run/stillpoint/locks/<uuid>.lock,
 * holding who took it, so a second run can say who is busy with the VM.
 * The kernel drops the lock when its holder dies, kill -9 included. */
#ifndef SP_VM_LOCK_H
#define SP_VM_LOCK_H

#include <stdbool.h>

#include "err.h"
#include "own_dirs.h"


struct vm_lock {
  int fd;
};
#define VM_LOCK_INIT { .fd = -1 }

/* Without waiting: a held lock fails with exit 1 and the holder named; a
 * lock this user cannot take at all fails with exit 3.
 * what: "backup", "prune", ... for the holder line. */
int vm_lock_take(const char *uuid, const char *name, const char *what, struct vm_lock *l,
                 struct sp_err *e);
void vm_lock_release(struct vm_lock *l);

/* The mechanism under both: opens SP_LOCK_DIR/<file> and tries flock
 * without waiting.  On success *fd is open and *taken says whether the
 * lock is ours (when not, the fd still reads what the holder wrote). */
int lock_file_try(const char *file, int *fd, bool *taken, struct sp_err *e);

#endif
