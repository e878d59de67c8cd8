/* Writing a point: everything goes into <id>.partial/, each file fsynced
 * and hashed as it is written; point_finish adds SHA256SUMS, fsyncs the
 * directories and renames to <id>/ (invariant 3). */
#ifndef SP_POINT_WRITE_H
#define SP_POINT_WRITE_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "phases.h"
#include "point_layout.h"
#include "state_capture.h"
#include "xalloc.h"

struct point_dir {
  char *domain_dir;
  char *id;
  char *partial_name; /* <id>.partial */
  char *partial;   /* <domain_dir>/<id>.partial */
  char *final;     /* <domain_dir>/<id> */
  int domain_fd;   /* of domain_dir, checked as trusted (trust.h) */
  int fd;          /* of partial */
  int lock_fd;     /* <id>.lock, held while the point is written (when locked) */
  bool locked;
  struct sp_sums sums;
};
#define POINT_DIR_INIT { .domain_fd = -1, .fd = -1 }

/* Creates <target>/<domain>/<id>.partial/ with disks/ (0700 all), below
 * the domain directory held open once it passed the trust check. */
int point_create(struct point_dir *pd, const char *domain_dir, const char *id,
                 struct sp_err *e);
/* A subdirectory, e.g. "nvram" or "tpm/tpm2". */
int point_mkdir(struct point_dir *pd, const char *rel, struct sp_err *e);
int point_put(struct point_dir *pd, const char *rel, const void *data, size_t len,
              mode_t mode, struct sp_err *e);
int point_put_blob(struct point_dir *pd, const char *reldir, const struct sp_blob *b,
                   struct sp_err *e);
int point_put_tree(struct point_dir *pd, const char *reldir, const struct sp_tree *t,
                   struct sp_err *e);
/* Hashes a file the copier wrote, open as fd (and fsyncs it first: a
 * copier might not); the time of each is added to *fsync_ms, *hash_ms.
 * sha, when not NULL, is the hash the copier gave for it (it hashed the
 * file as it wrote it): the file is not read again. */
int point_add_fd(struct point_dir *pd, const char *rel, int fd, const char *sha,
                 double *fsync_ms, double *hash_ms, struct sp_err *e);
/* SHA256SUMS, the directories' fsyncs, the rename; *t gets their times. */
int point_finish(struct point_dir *pd, struct phases_tail *t, struct sp_err *e);
void point_dir_free(struct point_dir *pd);

/* <partial>/<rel>, malloc'd. */
SP_XALLOC char *point_path(const struct point_dir *pd, const char *rel);

#endif
