/* The mark of an offline backup: while `stillpoint backup` holds a
 * shut-off VM started paused for its job, SP_OFFLINE_DIR/<uuid> exists on
 * the hypervisor.  libvirt runs our hook for that start and that stop as
 * for any other; the hook reads the mark and does nothing for them (no
 * TPM recovery, no snapshot: the backup's start is not the VM's own).
 *
 * A mark outlives a coordinator killed with -9 whose guardian died too.
 * So on the machine the backup runs on, a mark counts only while the
 * VM's lock (vm_lock.h) is held; a mark left by a remote coordinator
 * (no lock file here) counts for SP_OFFLINE_MARK_MAX_AGE_S.  /run is
 * emptied at every boot. */
#ifndef SP_OFFLINE_MARK_H
#define SP_OFFLINE_MARK_H

#include <stdbool.h>

#include "own_dirs.h"

#define SP_OFFLINE_MARK_MAX_AGE_S (12 * 3600)

/* SP_OFFLINE_DIR/<uuid> (malloc'd); NULL for a uuid unsafe as a name. */
char *sp_offline_mark_path(const char *uuid);
/* Whether an offline backup holds the VM now (the hook's question). */
bool sp_offline_mark_active(const char *uuid);

#endif
