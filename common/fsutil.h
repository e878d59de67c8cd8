/* File system helpers with the safety rules of a tool that runs as root:
 * files 0600 and directories 0700 unless a format needs otherwise, no
 * symlink followed where a path came from input, fsync where durability
 * is promised. */
#ifndef SP_FSUTIL_H
#define SP_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Reads a whole regular file (at most max bytes) into a NUL-terminated
 * buffer.  On failure errno tells why (ENOENT is common and expected). */
int sp_read_file(const char *path, size_t max, char **buf, size_t *len, struct sp_err *e);

/* Writes data to dirfd/name through name.tmp + fsync + rename; the file
 * gets the given mode.  The directory is not fsynced (call sp_fsync_dir). */
int sp_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     struct sp_err *e);
int sp_fsync_dir(const char *path, struct sp_err *e);

/* mkdir -p: every component it creates gets mode, set explicitly after
 * mkdir so that umask does not decide it; components that exist are left
 * as they are (they are not ours to change). */
int sp_mkdir_p(const char *path, mode_t mode, struct sp_err *e);

/* Makes path a directory of exactly this mode and owner: created when
 * missing (its parent must exist), repaired when its mode or owner
 * differ, so neither umask nor the order in which commands first ran
 * decides them.  A symlink or anything but a directory in its place is
 * refused. */
int sp_dir_ensure(const char *path, mode_t mode, uid_t uid, gid_t gid, struct sp_err *e);

/* True when rel is a relative path that stays inside its base: not empty,
 * not absolute, no "." or ".." component, no empty component. */
bool sp_relpath_ok(const char *rel);
/* True for a single file name: sp_relpath_ok and no '/'. */
bool sp_name_ok(const char *name);

/* Opens base/rel refusing any symlink or ".." on the way (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). */
int sp_open_beneath(int basefd, const char *rel, int flags, mode_t mode, struct sp_err *e);

/* Removes a tree without following symlinks; missing is fine. */
int sp_rm_rf(const char *path, struct sp_err *e);

/* Whether path is a directory / exists at all (lstat: symlinks are not
 * followed). */
bool sp_is_dir(const char *path);
bool sp_exists(const char *path);

/* Joins into a malloc'd string: a "/" b. */
char *sp_path_join(const char *a, const char *b);

/* Copies a regular file, data fsynced, mode kept; dst must not exist. */
int sp_copy_file(const char *src, const char *dst, mode_t mode, struct sp_err *e);

#endif
