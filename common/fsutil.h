/* File system helpers with the safety rules of a tool that runs as root:
 * files 0600 and directories 0700 unless a format needs otherwise, no
 * symlink followed where a path came from input, fsync where durability
 * is promised. */
#ifndef SP_FSUTIL_H
#define SP_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"
#include "xalloc.h"

/* Reads a whole regular file (at most max bytes) into a NUL-terminated
 * buffer.  On failure errno tells why (ENOENT is common and expected). */
int sp_read_file(const char *path, size_t max, char **buf, size_t *len, struct sp_err *e);

/* The same for a file of untrusted provenance (a point's), below dirfd:
 * opened with sp_open_beneath and O_NONBLOCK, so a FIFO or device in its
 * place is refused instead of hanging the reader, and a file larger than
 * max is refused before anything is read or allocated. */
int sp_read_file_at(int dirfd, const char *rel, size_t max, char **buf, size_t *len,
                    struct sp_err *e);

/* Opens rel below dirfd as sp_open_beneath does, read-only and
 * non-blocking, and refuses anything but a regular file with exactly one
 * link (a hard link could be a file outside the point); *st gets its
 * stat.  O_NONBLOCK is cleared again on the returned descriptor. */
int sp_open_regular_at(int dirfd, const char *rel, struct stat *st, struct sp_err *e);

/* Writes data to dirfd/name through name.tmp + fsync + rename; the file
 * gets the given mode.  The directory is not fsynced (call sp_fsync_dir). */
int sp_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     struct sp_err *e);
int sp_fsync_dir(const char *path, struct sp_err *e);

/* Creates dirfd/name with data, never replacing anything: written as a
 * hidden temporary, fsynced, given uid:gid (when uid is not (uid_t)-1)
 * and mode, then renamed with RENAME_NOREPLACE, so an existing file,
 * symlink or directory of that name stays as it is and the call fails
 * (EEXIST).  *created (may be NULL) gets the new file's stat, so that an
 * undo removes exactly this file (sp_unlink_if_same). */
int sp_create_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      uid_t uid, gid_t gid, struct stat *created, struct sp_err *e);
/* Removes dirfd/name only when it is still the file *was (device and
 * inode): an undo never removes what someone else put there since. */
int sp_unlink_if_same(int dirfd, const char *name, const struct stat *was);

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
/* True for an absolute path with no empty, "." or ".." component and no
 * trailing slash: what it says is where it leads (symlinks aside). */
bool sp_abspath_ok(const char *path);

/* Opens base/rel refusing any symlink or ".." on the way (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). */
int sp_open_beneath(int basefd, const char *rel, int flags, mode_t mode, struct sp_err *e);

/* Removes a tree without following symlinks; missing is fine.  The walk
 * holds each directory open and works below it (openat, unlinkat): a
 * symlink swapped in for a directory while it runs is removed as a link,
 * never followed; it stays on the file system it started on. */
int sp_rm_rf(const char *path, struct sp_err *e);
/* The same for dirfd/name (name a plain file name). */
int sp_rm_rf_at(int dirfd, const char *name, struct sp_err *e);

/* Whether path is a directory / exists at all (lstat: symlinks are not
 * followed). */
bool sp_is_dir(const char *path);
bool sp_exists(const char *path);

/* Whether the file system of the open file fd takes O_DIRECT (tmpfs
 * before Linux 6.6, some FUSE and network file systems do not): the flag
 * is set and put back, the file's offset and data untouched. */
bool sp_direct_io_ok(int fd);
/* sp_direct_io_ok() of every one of n descriptors (true when n is 0). */
bool sp_direct_io_all(const int *fds, size_t n);

/* Joins into a malloc'd string: a "/" b (never NULL: xalloc.h). */
SP_XALLOC char *sp_path_join(const char *a, const char *b);

/* Copies a regular file, data fsynced, mode kept; dst must not exist. */
int sp_copy_file(const char *src, const char *dst, mode_t mode, struct sp_err *e);

#endif
