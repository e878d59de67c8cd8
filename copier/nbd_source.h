/* The export being backed up: libnbd connections, its size and block
 * size limits, and its block status read window by window into the plan. */
#ifndef SP_COPY_NBD_SOURCE_H
#define SP_COPY_NBD_SOURCE_H

#include <libnbd.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "extents.h"
#include "options.h"
#include "plan.h"

struct source {
  struct nbd_handle *h[SP_COPY_MAX_CONNECTIONS];
  size_t n;              /* connections open; h[0] also answers block status */
  uint64_t size;
  uint64_t min_block;    /* every request is a multiple of this */
  uint64_t max_request;  /* largest read the server accepts, in whole clusters */
  bool has_alloc;        /* base:allocation was negotiated */
  const char *bitmap;    /* dirty-bitmap context, NULL for a full copy */
  struct sp_extents alloc, dirty; /* one window's extents */
  int map_err;           /* errno a block status reply carried */
};

/* Connects to uri, asking for base:allocation and bitmap (NULL for full).
 * Opens up to conns connections when the server advertises multi-conn
 * (a read-only export can serve them all consistently). */
int source_open(struct source *s, const char *uri, const char *bitmap, unsigned conns,
                struct sp_err *e);
/* Reads one window of block status from plan->pos and feeds the plan;
 * finishes the plan at the end of the disk. */
int source_map(struct source *s, struct sp_plan *plan, struct sp_err *e);
void source_close(struct source *s);

#endif
