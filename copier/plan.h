/* The copy plan: classified byte ranges (extents.h) coarsened to the
 * output's clusters, merged into segments, queued, and cut into requests.
 *
 * Working in whole clusters of the output image matters three ways: a
 * sub-cluster write into an overlay makes qcow2 copy the rest of the
 * cluster from the backing file (a read of the parent for nothing); a
 * sub-cluster write-zeroes allocates a data cluster instead of a zero
 * cluster; and the compress filter accepts whole clusters only.  A cluster
 * that mixes kinds becomes the larger kind: reading a whole cluster from
 * the point-in-time export is always correct, because its clean or zero
 * parts read back exactly what the parent or a zero would give. */
#ifndef SP_COPY_PLAN_H
#define SP_COPY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "extents.h"

struct sp_seg {
  uint64_t off, len;
  enum sp_kind kind;
};

typedef void sp_seg_fn(void *ud, const struct sp_seg *seg);

struct sp_plan {
  uint64_t size, cluster;
  uint64_t pos;       /* everything before pos has been fed */
  int ckind;          /* kind so far of the cluster pos is inside; -1 at a cluster boundary */
  struct sp_seg open; /* whole clusters not emitted yet (len 0: none) */
  sp_seg_fn *emit;
  void *ud;
};

/* cluster: a power of two. */
void sp_plan_init(struct sp_plan *p, uint64_t size, uint64_t cluster, sp_seg_fn *emit, void *ud);
/* Feeds the next range; off must be p->pos (an sp_piece_fn once cast). */
void sp_plan_feed(struct sp_plan *p, uint64_t off, uint64_t len, enum sp_kind kind);
/* Emits what is left; call once pos == size. */
void sp_plan_finish(struct sp_plan *p);

/* A FIFO of segments between the planner and the copy loop. */
struct sp_segq {
  struct sp_seg *v;
  size_t head, n, cap;
  uint64_t bytes; /* total length queued */
};

void sp_segq_push(struct sp_segq *q, const struct sp_seg *seg);
/* The head segment, NULL when empty. */
const struct sp_seg *sp_segq_peek(const struct sp_segq *q);
/* Cuts the next request from the head segment: at most max bytes (a
 * multiple of the cluster, so requests stay aligned).  False when empty. */
bool sp_segq_take(struct sp_segq *q, uint64_t max, struct sp_seg *out);
void sp_segq_free(struct sp_segq *q);

#endif
