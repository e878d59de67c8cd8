/* A disk's chain of images through the points of a domain, from a point
 * down to its full, validated before anything reads it: every image is a
 * regular file inside its point (no symlink on the way), each overlay's
 * backing file in its qcow2 header is exactly the one its manifest names,
 * and a full has none.  A crafted qcow2 whose header named /etc/shadow as
 * backing file would otherwise be read into a restored disk. */
#ifndef SP_POINT_CHAIN_H
#define SP_POINT_CHAIN_H

#include <stddef.h>

#include "err.h"
#include "manifest.h"

struct sp_chain_link {
  char *id;         /* point id */
  char *point_dir;
  char *image;      /* absolute path */
  char *format;     /* as qemu-img sees it: qcow2 (or raw, from a raw copier) */
  char *level;
};

struct sp_disk_chain {
  char *target;
  struct sp_chain_link *links; /* [0] the point asked for ... [n-1] its full */
  size_t n;
};

/* m is the (already parsed) manifest of point_dir. */
int sp_disk_chain_resolve(const char *point_dir, const struct sp_manifest *m,
                          const char *target, struct sp_disk_chain *c, struct sp_err *e);
void sp_disk_chain_free(struct sp_disk_chain *c);

/* qemu-img info of one image, without following its backing file: the
 * format and the backing file name as written in its header (NULL when
 * none); both malloc'd. */
int sp_image_header(const char *image, char **format, char **backing, struct sp_err *e);

/* Refuses (exit 3) a point directory holding a symlink anywhere inside,
 * or anything but regular files and directories. */
int sp_point_scan(const char *point_dir, struct sp_err *e);

#endif
