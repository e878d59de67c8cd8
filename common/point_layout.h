/* Names and places of backup points:
 *   <target>/<domain>/<id>/          a complete point
 *   <target>/<domain>/<id>.partial/  one being written, or a failed one
 * id = UTC time + level, e.g. 20261126T063000Z-inc, so ids sort by time. */
#ifndef SP_POINT_LAYOUT_H
#define SP_POINT_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "err.h"
#include "level.h"
#include "sha256.h"

#define SP_POINT_ID_MAX 32
#define SP_PARTIAL_SUFFIX ".partial"
#define SP_LOCK_SUFFIX ".lock"
/* A point's disk images, relative to the point (stillpoint-point(5)). */
#define SP_POINT_DISKS_DIR "disks"
#define SP_POINT_DISK_FMT SP_POINT_DISKS_DIR "/%s.qcow2" /* printf: the disk's target */

/* 20261126T063000Z-<level>. */
int sp_point_id_make(time_t t, enum sp_level level, char id[SP_POINT_ID_MAX]);
bool sp_point_id_valid(const char *id);

struct sp_point_ref {
  char id[SP_POINT_ID_MAX];
  bool partial;
};

/* The points in a domain directory, sorted oldest first; a missing
 * directory is an empty list.  Names that are not point ids are ignored. */
int sp_points_list(const char *domain_dir, struct sp_point_ref **out, size_t *n,
                   struct sp_err *e);
/* The same for a domain directory held open. */
int sp_points_list_at(int domain_fd, const char *domain_dir, struct sp_point_ref **out,
                      size_t *n, struct sp_err *e);

/* <id>.lock beside <id>.partial in the domain directory: the backup writing
 * the point holds an flock on it from before the .partial is made until
 * after its rename, and prune - of any host or URI writing into the same
 * target - removes a .partial only when it can take the lock (over NFS,
 * flock is a POSIX lock, which is why the file is opened for writing).
 * create: make it (the backup) or not (prune: a .partial without a lock
 * file has no writer).  Returns 1 when taken (*fd open, or -1 when there
 * is no lock file), 0 when another process holds it, -1 on error. */
int sp_point_lock_at(int domain_fd, const char *id, bool create, int *fd, struct sp_err *e);
/* Removes the lock file and lets go (fd -1: nothing held). */
void sp_point_unlock_at(int domain_fd, const char *id, int fd);

struct sp_sum {
  char *path;  /* relative to the point */
  char sha256[SP_SHA256_HEX_LEN + 1];
};

struct sp_sums {
  struct sp_sum *v;
  size_t n;
};

void sp_sums_add(struct sp_sums *s, const char *path, const char *sha256);
/* Writes SHA256SUMS (sha256sum -c format) into the point directory. */
int sp_sums_write(int point_dirfd, const struct sp_sums *s, struct sp_err *e);
/* Parses a SHA256SUMS text; every path must stay inside the point. */
int sp_sums_parse(const char *text, size_t len, struct sp_sums *s, struct sp_err *e);
/* Reads and parses SHA256SUMS of an open point (at most 1 MiB). */
int sp_sums_load_at(int point_fd, struct sp_sums *s, struct sp_err *e);
/* The hash listed for path, or NULL. */
const char *sp_sums_find(const struct sp_sums *s, const char *path);
void sp_sums_free(struct sp_sums *s);

#endif
