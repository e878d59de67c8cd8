/* The RBD destination of a copy (docs/design.md, "Points in Ceph"): the
 * image a point's disk is written into, and the snapshot that makes it
 * the point's disk.  A full creates a new image (and removes it again
 * when the copy fails); an inc or diff writes into the chain's image,
 * whose newest snapshot must be the parent's. */
#ifndef SP_COPY_RBD_SINK_H
#define SP_COPY_RBD_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "ceph_lib.h"
#include "ceph_client.h"
#include "err.h"
#include "rbd_spec.h"

struct rbd_sink {
  rados_t cluster;
  rados_ioctx_t io;
  rbd_image_t image;
  int evfd;        /* eventfd librbd signals when a write completes; -1 before open */
  bool created;    /* we created the image: a failed copy removes it */
  bool committed;  /* the snapshot exists: the image stays */
  bool broken;     /* an operation timed out: the cluster is not answering */
  struct sp_rbd_spec out;
};

#define RBD_SINK_INIT { .evfd = -1 }

/* Connects and opens the destination for a copy of a disk of size bytes.
 * output: rbd:POOL[/NS]/IMAGE@ID; parent (inc, diff; NULL for a full):
 * rbd:POOL[/NS]/IMAGE@PARENT-ID, the same image.  Refuses (nothing
 * created) an existing image for a full, a missing one for inc/diff, a
 * snapshot ID that exists, a newest snapshot other than PARENT-ID, and an
 * image of another size. */
int rbd_sink_open(struct rbd_sink *s, const struct sp_ceph_opts *ceph, const char *output,
                  const char *parent, uint64_t size, struct sp_err *e);
/* Makes the writes durable and creates the snapshot. */
int rbd_sink_commit(struct rbd_sink *s, struct sp_err *e);
/* Records that an operation failed with err; ETIMEDOUT marks the sink broken. */
void rbd_sink_failed(struct rbd_sink *s, int err);
/* Closes; removes the image when we created it and did not commit.  A
 * broken sink is left as it is: every further call would wait out the op
 * timeout again (closing and removing take several), and the process is
 * about to exit; the coordinator's intents find the image later. */
void rbd_sink_close(struct rbd_sink *s);

#endif
