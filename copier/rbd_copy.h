/* stillpoint-copy into RBD (docs/design.md, "Points in Ceph"): the same
 * source, block status and extent plan as a qcow2 copy (nbd_source.h,
 * plan.h), written with librbd's asynchronous writes into the point's
 * image, then the snapshot that is the point's disk.  Reads and writes
 * are driven by one poll loop over the libnbd handles and librbd's
 * completion eventfd; writes go out as soon as their read is done (RBD
 * has no layout to keep in disk order). */
#ifndef SP_COPY_RBD_COPY_H
#define SP_COPY_RBD_COPY_H

#include "err.h"
#include "options.h"

/* The whole copy for an rbd: output; prefix is "stillpoint-copy: <disk>",
 * t0 when the program started (progress_now()).  Prints the summary line
 * on success. */
int rbd_copy_disk(const struct copy_opts *o, const char *prefix, double t0, struct sp_err *e);

#endif
