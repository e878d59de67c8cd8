/* The copy itself: reads from the source connections and writes to
 * qemu-nbd with many requests in flight, driven by one poll loop over
 * all libnbd handles (no threads: the work is in the two servers, the
 * copier only moves buffers and checks them for zeroes). */
#ifndef SP_COPY_COPY_LOOP_H
#define SP_COPY_COPY_LOOP_H

#include <libnbd.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "interrupt.h"
#include "nbd_source.h"
#include "progress.h"

struct copy_job {
  struct source *src;
  struct nbd_handle *dst;
  bool full;             /* the image starts all zero: zero ranges need no write */
  bool pad_tail;         /* extend the write of a short last cluster to a whole one */
  uint64_t request_size; /* bytes per read, a multiple of the cluster */
  unsigned requests;     /* requests in flight, each with its own buffer */
  const struct interrupt *intr;
  struct progress *prog;
  unsigned stall_timeout_s; /* fail when no request completes this long (0: wait forever) */
};

/* Walks the source's block status once and returns the bytes the copy
 * will read plus those it will zero: the total progress counts against. */
int copy_measure(struct source *src, bool full, uint64_t *total, struct sp_err *e);

/* Copies everything the plan asks for; st counts what was done. */
int copy_run(const struct copy_job *job, struct sp_copy_stats *st, struct sp_err *e);

#endif
