/* The copy itself: reads from the source connections with many requests
 * in flight, driven by one poll loop over all libnbd handles, and writes
 * in disk order either to the image's own writer (file_sink.h: a thread
 * that writes what the loop hashed) or to qemu-nbd (compressed images). */
#ifndef SP_COPY_COPY_LOOP_H
#define SP_COPY_COPY_LOOP_H

#include <libnbd.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "interrupt.h"
#include "file_sink.h"
#include "nbd_source.h"
#include "progress.h"

struct copy_job {
  struct source *src;
  struct nbd_handle *dst;   /* qemu-nbd, or NULL with fsink */
  struct file_sink *fsink;  /* the image's own writer, or NULL with dst */
  bool full;             /* the image starts all zero: zero ranges need no write */
  bool pad_tail;         /* extend the write of a short last cluster to a whole one */
  uint64_t request_size; /* bytes per read, a multiple of the cluster */
  unsigned requests;     /* requests in flight, each with its own buffer */
  const struct interrupt *intr;
  struct progress *prog;
  unsigned stall_timeout_s; /* fail when no request completes this long (0: wait forever) */
};

/* Walks the source's block status once and returns the bytes the copy
 * will read plus those it will zero: the total progress counts against;
 * with map, marks there the clusters it will write as data or zero. */
int copy_measure(struct source *src, bool full, struct sp_qcow2_map *map, uint64_t *total,
                 struct sp_err *e);

/* Copies everything the plan asks for; st counts what was done. */
int copy_run(const struct copy_job *job, struct sp_copy_stats *st, struct sp_err *e);

#endif
