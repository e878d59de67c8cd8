/* stillpoint's own directories, each with the one mode and owner the code
 * relies on, made or repaired where they are used: /run is a tmpfs that
 * every reboot empties, a hardened root shell runs under umask 077, and
 * any command (the hook's first snapshot, prune, a backup) may be the
 * first to need one.  Directories stillpoint does not own (/run, /var/lib,
 * an administrator's scratch_dir or target) are never changed: when one is
 * missing, its missing components are made with the mode the caller's use
 * needs, and an existing one is only checked (preflight). */
#ifndef SP_OWN_DIRS_H
#define SP_OWN_DIRS_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

struct sp_host;

#define SP_RUN_DIR "/run/stillpoint"        /* 0711: QEMU passes to its job's directory */
#define SP_LOCK_DIR SP_RUN_DIR "/locks"     /* 0700 */
#define SP_MOUNT_DIR SP_RUN_DIR "/mounts"   /* 0700: stillpoint mount's run directories */
#define SP_OFFLINE_DIR SP_RUN_DIR "/offline" /* 0700: marks of offline backups (offline_mark.h) */
#define SP_INSTANT_DIR SP_RUN_DIR "/instant" /* 0711: QEMU reaches the point's NBD sockets */
#define SP_LIB_DIR "/var/lib/stillpoint"    /* 0711: QEMU passes to scratch/ */
#define SP_SCRATCH_DEFAULT SP_LIB_DIR "/scratch" /* 0711 */
#define SP_STATE_DEFAULT SP_LIB_DIR "/state"     /* 0700: the hook's snapshots */
#define SP_TARGET_DEFAULT SP_LIB_DIR "/backups"  /* 0700 */

struct sp_own_dir {
  const char *path;
  mode_t mode;       /* owner is always root:root */
  const char *what;  /* for `stillpoint check` */
};

/* The table, parents before children; n set to its length. */
const struct sp_own_dir *sp_own_dirs(size_t *n);
/* The entry for exactly this path, or NULL when stillpoint does not own it. */
const struct sp_own_dir *sp_own_dir_find(const char *path);

/* Makes path usable on host h: every component stillpoint owns is made
 * or repaired to its table mode (root:root); a missing component it does
 * not own is made with mode `missing` (root:root); an existing one it does
 * not own is left alone. */
int sp_dirs_prepare(struct sp_host *h, const char *path, mode_t missing, struct sp_err *e);
/* The same on this machine, for code below the host layer. */
int sp_dirs_prepare_local(const char *path, mode_t missing, struct sp_err *e);

#endif
