/* A disk of a point turned back into a VM disk: the chain flattened into
 * one image (its images copied and hashed, the overlays committed into the
 * full image's copy; qemu-img convert where that cannot be: raw, or a disk
 * resized along the chain), or copied as a chain whose backing paths
 * point at the copies.  qemu-img reads the chain only through the
 * descriptors point_chain.c opened and checked (a json: filename with
 * every layer spelled out), and writes into a private staging directory
 * inside the destination directory, which is held open; each finished
 * file is then renamed into place with RENAME_NOREPLACE, so nothing is
 * ever overwritten, no symlink in the destination is followed, and no
 * half-written disk carries its name. */
#ifndef SP_RESTORE_DISKS_H
#define SP_RESTORE_DISKS_H

#include <stdbool.h>
#include <sys/stat.h>

#include "err.h"
#include "point_chain.h"

/* A file restore created: removed by an undo only while it is still
 * that file (sp_unlink_if_same). */
struct restore_made {
  int dir_fd;     /* a dup of the directory's descriptor */
  char *name;
  struct stat st;
};

struct restore_made_list {
  struct restore_made *v;
  size_t n;
};

/* Writes dir_fd/file (format "qcow2" or "raw" for a flattened disk); with
 * keep_chain a qcow2 chain file, file.<id>, ... (a raw full image is
 * copied as it is).  A kept chain, and a chain restore_plan_flatten_by_copy()
 * takes, is hashed against SHA256SUMS while it is copied; any other chain
 * to flatten must have been hashed by the caller (sp_chain_check_hashes(),
 * as restore's load_chains() does before anything is written), through
 * the descriptors c holds.
 * What was made is appended to made. */
int restore_disk(const struct sp_disk_chain *c, int dir_fd, const char *dir, const char *file,
                 const char *format, bool keep_chain, struct restore_made_list *made,
                 struct sp_err *e);

/* Writes dir_fd/file (format "qcow2" or "raw") from a Ceph point's
 * snapshot, source QEMU's rbd: file name of it (rbd_point_qemu_source),
 * the same way: staged, renamed in without replacing, appended to made. */
int restore_disk_rbd(const char *source, int dir_fd, const char *dir, const char *file,
                     const char *format, struct restore_made_list *made, struct sp_err *e);

/* Removes what made lists, newest first, each only if it is still the
 * file restore made; empties the list. */
void restore_made_undo(struct restore_made_list *made);
void restore_made_free(struct restore_made_list *made);

#endif
