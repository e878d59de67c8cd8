/* Whether a directory may be trusted with stillpoint's points, checked
 * the way OpenSSH's StrictModes checks a user's files: every component of
 * its path, from /, owned by root (or by the user running stillpoint) and
 * writable by nobody else.  Anyone else who can write a component can
 * swap what lies below it between a check and a use - a point for a
 * crafted one, a directory for a symlink into /etc - so such a target is
 * refused (exit 3) with the fix, before anything is read or written.
 *
 * One exception, as for /tmp: a root-owned sticky directory may be
 * writable by all, because nobody but an entry's owner can rename or
 * remove that entry; the component below it must then be ours.  The
 * last component never gets the exception. */
#ifndef SP_TRUST_H
#define SP_TRUST_H

#include <stdbool.h>
#include <sys/stat.h>

#include "err.h"

/* Resolves the symlinks its administrator put on the way (realpath),
 * then walks the resolved path from / with O_NOFOLLOW, checking each
 * component on the descriptor it opened (nothing can be swapped between
 * check and use).  Returns a descriptor of the directory (O_RDONLY),
 * -1 with e set: exit 3 for an untrusted component, 1 when it cannot be
 * opened.  what names it in messages ("target", "point"). */
int sp_trusted_dir_open(const char *what, const char *path, struct sp_err *e);
/* The same, also trusting directories owned by also (not (uid_t)-1): for
 * libvirt's own directories that belong to QEMU's user (its NVRAM
 * directory), written only through *at calls that replace nothing. */
int sp_trusted_dir_open_also(const char *what, const char *path, uid_t also, struct sp_err *e);

/* The same check for a directory stillpoint will create: the part of
 * path that exists is checked, what is missing is fine (it will be made
 * by root, 0700). */
int sp_trusted_path_check(const char *what, const char *path, struct sp_err *e);

/* The check of one component: st of a directory named path; last when
 * nothing below it is checked (no sticky exception).  Pure, for tests. */
int sp_trust_check_stat(const char *what, const char *path, const struct stat *st, bool last,
                        struct sp_err *e);
int sp_trust_check_stat_also(const char *what, const char *path, const struct stat *st,
                             bool last, uid_t also, struct sp_err *e);

#endif
