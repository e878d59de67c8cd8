/* The hook's snapshot store: TPM state and NVRAM of a VM taken while it
 * is off, one directory per snapshot, shared by stillpoint-hook (writes at
 * stop, reads at start) and `stillpoint state` (lists, restores).
 *
 *   <state_dir>/<uuid>/            0700 root
 *     .lock                        flock: one writer or restorer at a time
 *     <id>/                        id = UTC time, 20261126T063000Z[-N]
 *       snapshot.json              what, when, from where, hashes, owners
 *       domain.xml                 the XML libvirt gave the hook
 *       tpm/<tpm2|tpm1.2>/...      the swtpm state files
 *       nvram/<file name>          the NVRAM file
 *       SHA256SUMS                 `sha256sum -c` compatible
 *       PINNED                     optional: prune keeps it (why, inside)
 *     .<id>.partial/               being written; never read, removed by prune
 *     forgotten-<time>/<id>/       moved aside by `stillpoint state forget`
 *
 * Every file is 0600 and every directory 0700 whatever the source's mode
 * was: the source's owner and mode are in snapshot.json for restore. */
#ifndef SP_STATE_SNAPSHOTS_H
#define SP_STATE_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "snapshot_meta.h"
#include "state_files.h"

/* Writes s as a new snapshot (its id and created are filled in): into
 * .<id>.partial, every file and directory fsynced, then renamed.  The
 * caller holds the lock. */
int sp_snap_write(const char *state_dir, struct sp_snapshot *s, struct sp_err *e);

/* The snapshot ids of a VM, oldest first; a VM without any gives n = 0. */
int sp_snap_list(const char *state_dir, const char *uuid, char ***ids, size_t *n,
                 struct sp_err *e);
void sp_snap_ids_free(char **ids, size_t n);

/* What sp_snap_read reads besides the metadata. */
enum sp_snap_parts {
  SP_SNAP_META = 0,
  SP_SNAP_TPM = 1,    /* the TPM files (and domain.xml) */
  SP_SNAP_NVRAM = 2,  /* the NVRAM file (and domain.xml) */
  SP_SNAP_ALL = SP_SNAP_TPM | SP_SNAP_NVRAM,
};

/* Reads one snapshot's metadata and the parts asked for, each file checked
 * against its recorded SHA-256 (a damaged snapshot is an error naming
 * the file). */
int sp_snap_read(const char *state_dir, const char *uuid, const char *id, unsigned parts,
                 struct sp_snapshot *s, struct sp_err *e);

/* The newest snapshot whose metadata reads (with a TPM state when
 * need_tpm); *found false when there is none.  Metadata only. */
int sp_snap_newest(const char *state_dir, const char *uuid, bool need_tpm,
                   struct sp_snapshot *s, bool *found, struct sp_err *e);

/* Whether two snapshots hold the same TPM state and NVRAM (by hash). */
bool sp_snap_same_state(const struct sp_snapshot *a, const struct sp_snapshot *b);

/* Removes all but the newest keep unpinned snapshots, and leftovers of
 * interrupted writes; *removed counts the snapshots removed.  The caller
 * holds the lock. */
int sp_snap_prune(const char *state_dir, const char *uuid, long keep, int *removed,
                  struct sp_err *e);

/* `stillpoint state forget`: moves every snapshot of the VM, pinned ones
 * too, into <state_dir>/<uuid>/forgotten-<UTC time>/, where neither the
 * hook (recovery, comparisons), list, restore nor prune looks, so the
 * next start keeps whatever TPM state the VM has then.  Nothing is
 * deleted.  *moved counts them (0: nothing to do, *moved_to NULL);
 * *moved_to names the directory, also on a failure half-way.  The caller
 * holds the lock. */
int sp_snap_forget(const char *state_dir, const char *uuid, char **moved_to, size_t *moved,
                   struct sp_err *e);

/* Marks a snapshot so that prune keeps it; reason is stored in PINNED. */
int sp_snap_pin(const char *state_dir, const char *uuid, const char *id, const char *reason,
                struct sp_err *e);

/* Takes the VM's store lock (blocking: the hook bounds its own time).
 * With create false and no store for this VM, *fd is -1 and 0 returned. */
int sp_snap_lock(const char *state_dir, const char *uuid, bool create, int *fd,
                 struct sp_err *e);

/* A fingerprint of a flat state directory without reading its files:
 * name, size, inode, mtime and ctime of each (.lock and swtpm's TMP*
 * left out, as sp_tree_read does).  Equal fingerprints mean untouched
 * files (ctime cannot be set back), so the next start need not hash
 * them. */
int sp_snap_stat_sig(const char *dir, char **sig, struct sp_err *e);

/* Whether a name is a snapshot id (and so safe as a path component). */
bool sp_snap_id_ok(const char *id);

void sp_snapshot_free(struct sp_snapshot *s);

#endif
