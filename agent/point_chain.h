/* Reading a point and a disk's chain of images through the points of a
 * domain, from a point down to its full, as untrusted input: everything
 * below the domain directory is reached through descriptors (openat2
 * RESOLVE_BENEATH, no symlink followed), every image is a regular file
 * with one link inside its point, opened as the format its manifest
 * records and checked by our own header parser (image_check.h): each
 * overlay's backing file exactly the one its manifest names, a full none,
 * no external data file or encryption.  The descriptors stay open, so
 * what is hashed and handed to qemu-img is what was checked. */
#ifndef SP_POINT_CHAIN_H
#define SP_POINT_CHAIN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "manifest.h"
#include "point_layout.h"

/* A point opened for reading: its domain directory (where the points of
 * a chain live) checked as trusted (trust.h) and held, the point below it
 * opened without following a symlink and checked the same way. */
struct sp_point {
  char path[PATH_MAX];     /* resolved, for messages */
  char name[NAME_MAX + 1]; /* the directory's name: <id> or <id>.partial */
  int domain_fd;
  int fd;
};
#define SP_POINT_INIT { .domain_fd = -1, .fd = -1 }

/* Exit 3 for an untrusted or missing point, 1 when it cannot be opened. */
int sp_point_open(const char *path, struct sp_point *p, struct sp_err *e);
void sp_point_close(struct sp_point *p);

/* Refuses (exit 3) a point holding a symlink anywhere inside, anything
 * but regular files and directories, or a file with more than one link;
 * path names it in messages. */
int sp_point_scan(int point_fd, const char *path, struct sp_err *e);

struct sp_chain_link {
  char *id;            /* point id */
  char *rel;           /* <id>/disks/<file>, relative to the domain directory */
  const char *format;  /* "qcow2" | "raw": the manifest's image_format */
  enum sp_level level;
  char *backing;       /* the backing file its header names (the manifest's), NULL: full */
  char sha256[SP_SHA256_HEX_LEN + 1]; /* listed in that point's SHA256SUMS */
  int fd;              /* the image, checked */
  uint64_t vsize;      /* virtual size (raw: file size) */
};

struct sp_disk_chain {
  char *target;
  struct sp_chain_link *links; /* [0] the point asked for ... [n-1] its full */
  size_t n;
};

/* m and sums are those of the point open as point_fd (below domain_fd). */
int sp_disk_chain_resolve(int domain_fd, int point_fd, const struct sp_manifest *m,
                          const struct sp_sums *sums, const char *target,
                          struct sp_disk_chain *c, struct sp_err *e);
void sp_disk_chain_free(struct sp_disk_chain *c);

/* Hashes each link from `from` on and compares with its SHA256SUMS line;
 * the first that differs is named. */
int sp_chain_check_hashes(const struct sp_disk_chain *c, size_t from, struct sp_err *e);

/* The json: filename of links from..n-1 for qemu-img (sp_image_json), the
 * child's descriptors numbered from first_child_fd on, and the
 * descriptors to pass in that order (*fds malloc'd, *nfds set). */
char *sp_chain_json(const struct sp_disk_chain *c, size_t from, int first_child_fd, int **fds,
                    size_t *nfds);

#endif
