#include "rbd_copy.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "copy_loop.h"
#include "interrupt.h"
#include "iszero.h"
#include "nbd_source.h"
#include "plan.h"
#include "progress.h"
#include "rbd_sink.h"
#include "xalloc.h"

/* A write-zeroes carries no payload: one request may cover much more
 * than a read (librbd splits it per object). */
#define ZERO_MAX (1ull << 30)
/* Zero detection works in these units, as for qcow2 (plan.h). */
#define ZERO_UNIT SP_COPY_CLUSTER

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READY, SLOT_WRITING };

struct rloop;

/* One request: read into buf (data only), then written as data and
 * zero runs; free again when every write completed. */
struct slot {
  struct rloop *lp;
  struct sp_seg seg;
  enum slot_state state;
  unsigned conn;
  unsigned pending; /* librbd writes in flight */
  int err;          /* first error (errno) of its read or writes */
  char *buf;
};

struct rloop {
  struct source *src;
  struct rbd_sink *dst;
  bool full;
  uint64_t request_size;
  unsigned nslots;
  struct slot *slots;
  unsigned busy;    /* slots not free */
  unsigned reads[SP_COPY_MAX_CONNECTIONS];
  const struct interrupt *intr;
  struct progress *prog;
  struct sp_copy_stats *st;
  struct sp_plan plan;
  struct sp_segq q;
  char *mem;
  size_t memlen;
};

/* After a failure or a signal, writes may still be in flight. librbd
 * queues each one's completion for rbd_poll_io_events when it ends, and
 * nobody else frees it: wait for them (rbd_flush, bounded by the client's
 * op timeout) and release them. A broken sink (an OSD timed out) is left
 * alone, as rbd_sink_close leaves it. */
static void drain_inflight(struct rloop *lp)
{
  unsigned pending = 0;
  for (unsigned i = 0; lp->slots && i < lp->nslots; i++)
    pending += lp->slots[i].pending;
  if (!pending || !lp->dst || lp->dst->broken)
    return;
  (void)rbd_flush(lp->dst->image);
  unsigned released = 0;
  for (int tries = 0; released < pending && tries < 100; tries++) {
    rbd_completion_t done[64];
    int n;
    while ((n = rbd_poll_io_events(lp->dst->image, done, 64)) > 0) {
      for (int i = 0; i < n; i++)
        rbd_aio_release(done[i]);
      released += (unsigned)n;
    }
    if (released < pending) {
      /* a completion not queued yet: its thread is about to */
      struct pollfd pfd = { .fd = lp->dst->evfd, .events = POLLIN };
      uint64_t count;
      if (poll(&pfd, 1, 100) > 0 && read(lp->dst->evfd, &count, sizeof count) < 0)
        break;
    }
  }
}

static void rloop_free(struct rloop *lp)
{
  drain_inflight(lp);
  /* Safe with writes still in flight after a failure: librbd copied
   * their data when they were submitted (rbd_sink.c, copy_writes). */
  if (lp->mem)
    munmap(lp->mem, lp->memlen);
  free(lp->slots);
  sp_segq_free(&lp->q);
}

static void enqueue(void *ud, const struct sp_seg *seg)
{
  struct rloop *lp = ud;
  if (seg->kind == SP_SKIP || (seg->kind == SP_ZERO && lp->full))
    return;
  sp_segq_push(&lp->q, seg);
}

static int refill(struct rloop *lp, struct sp_err *e)
{
  const uint64_t want = 4ull * lp->nslots * lp->request_size;
  while (lp->plan.pos < lp->src->size && lp->q.bytes < want) {
    if (source_map(lp->src, &lp->plan, e) < 0)
      return -1;
  }
  return 0;
}

static int read_done(void *ud, int *error)
{
  struct slot *sl = ud;
  sl->lp->reads[sl->conn]--;
  if (*error && !sl->err)
    sl->err = *error;
  sl->state = SLOT_READY;
  return 1;
}

static unsigned least_busy(const struct rloop *lp)
{
  unsigned best = 0;
  for (unsigned i = 1; i < lp->src->n; i++)
    if (lp->reads[i] < lp->reads[best])
      best = i;
  return best;
}

static struct slot *free_slot(struct rloop *lp)
{
  for (unsigned i = 0; i < lp->nslots; i++)
    if (lp->slots[i].state == SLOT_FREE)
      return &lp->slots[i];
  return NULL;
}

static int issue(struct rloop *lp, struct sp_err *e)
{
  const struct sp_seg *next;
  struct slot *sl;
  while ((next = sp_segq_peek(&lp->q)) && (sl = free_slot(lp))) {
    sp_segq_take(&lp->q, next->kind == SP_DATA ? lp->request_size : ZERO_MAX, &sl->seg);
    sl->pending = 0;
    sl->err = 0;
    sl->state = SLOT_READY; /* a zero range needs no read */
    lp->busy++;
    if (sl->seg.kind != SP_DATA)
      continue;
    sl->conn = least_busy(lp);
    sl->state = SLOT_READING;
    lp->reads[sl->conn]++;
    nbd_completion_callback cb = { .callback = read_done, .user_data = sl };
    if (nbd_aio_pread(lp->src->h[sl->conn], sl->buf, sl->seg.len, sl->seg.off, cb, 0) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "reading the export: %s", nbd_get_error());
  }
  return 0;
}

/* One librbd write or write-zeroes of [from, from+len) of the slot's range. */
static int write_run(struct rloop *lp, struct slot *sl, uint64_t from, uint64_t len, bool zero,
                     struct sp_err *e)
{
  if (zero && lp->full)
    return 0; /* a new image reads zeroes there */
  const uint64_t off = sl->seg.off + from;
  *(zero ? &lp->st->zeroed : &lp->st->written) += len;
  rbd_completion_t c;
  int rc = rbd_aio_create_completion(sl, NULL, &c);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "librbd completion");
  /* Write-zeroes, never discard: a discard smaller than an object may be
   * skipped (rbd_skip_partial_discard, the discard granularity) and let
   * the parent snapshot's data show through. */
  rc = zero ? rbd_aio_write_zeroes(lp->dst->image, off, len, c, 0, 0)
            : rbd_aio_write(lp->dst->image, off, len, sl->buf + from, c);
  if (rc < 0) {
    rbd_aio_release(c);
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "writing the RBD image at offset %" PRIu64, off);
  }
  sl->pending++;
  return 0;
}

/* Data that reads as zeroes is written as zeroes: no space, and the
 * parent snapshot's data stays hidden. */
static int write_data(struct rloop *lp, struct slot *sl, struct sp_err *e)
{
  const uint64_t len = sl->seg.len;
  uint64_t run = 0;
  bool run_zero = false;
  for (uint64_t p = 0; p < len; p += ZERO_UNIT) {
    uint64_t n = len - p < ZERO_UNIT ? len - p : ZERO_UNIT;
    bool z = sp_is_zero(sl->buf + p, n);
    if (p > run && z != run_zero) {
      if (write_run(lp, sl, run, p - run, run_zero, e) < 0)
        return -1;
      run = p;
    }
    run_zero = z;
  }
  return write_run(lp, sl, run, len - run, run_zero, e);
}

static void retire_if_done(struct rloop *lp, struct slot *sl)
{
  if (sl->state == SLOT_WRITING && !sl->pending && !sl->err) {
    progress_add(lp->prog, sl->seg.len);
    sl->state = SLOT_FREE;
    lp->busy--;
  }
}

static int dispatch(struct rloop *lp, struct sp_err *e)
{
  for (unsigned i = 0; i < lp->nslots; i++) {
    struct slot *sl = &lp->slots[i];
    if (sl->state != SLOT_READY)
      continue;
    if (sl->err)
      return sp_err_sys(e, SP_EXIT_FAILED, sl->err,
                        "reading %" PRIu64 " bytes at offset %" PRIu64 " from the export",
                        sl->seg.len, sl->seg.off);
    if (sl->seg.kind == SP_DATA)
      lp->st->read += sl->seg.len;
    sl->state = SLOT_WRITING;
    if ((sl->seg.kind == SP_DATA ? write_data(lp, sl, e)
                                 : write_run(lp, sl, 0, sl->seg.len, true, e)) < 0)
      return -1;
    retire_if_done(lp, sl); /* nothing written (zeroes into a new image) */
  }
  return 0;
}

/* Collects finished librbd writes. */
static int reap(struct rloop *lp, struct sp_err *e)
{
  uint64_t count;
  if (read(lp->dst->evfd, &count, sizeof count) < 0 && errno != EAGAIN)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "librbd eventfd");
  rbd_completion_t done[64];
  int n = 0;
  struct slot *failed = NULL;
  /* Every completion taken from the queue is released, also after a
   * failure: the rest of a batch would otherwise leak, and the drain on
   * the way out would wait for completions that never come again. */
  while (!failed && (n = rbd_poll_io_events(lp->dst->image, done, 64)) > 0) {
    for (int i = 0; i < n; i++) {
      struct slot *sl = rbd_aio_get_arg(done[i]);
      ssize_t rc = rbd_aio_get_return_value(done[i]);
      rbd_aio_release(done[i]);
      sl->pending--;
      if (rc < 0 && !sl->err)
        sl->err = (int)-rc;
      if (rc < 0)
        rbd_sink_failed(lp->dst, (int)-rc);
      if (sl->err && !sl->pending && !failed)
        failed = sl;
      retire_if_done(lp, sl);
    }
  }
  if (failed)
    return sp_err_sys(e, SP_EXIT_FAILED, failed->err,
                      "writing the RBD image at offset %" PRIu64 "%s", failed->seg.off,
                      failed->err == ETIMEDOUT ? " (an OSD did not answer in time)" : "");
  if (n < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -n, "librbd completions");
  return 0;
}

static int wait_io(struct rloop *lp, struct sp_err *e)
{
  const struct source *src = lp->src;
  struct pollfd pfd[SP_COPY_MAX_CONNECTIONS + 2];
  for (size_t i = 0; i < src->n; i++) {
    unsigned dir = nbd_aio_get_direction(src->h[i]);
    pfd[i] = (struct pollfd){
      .fd = nbd_aio_get_fd(src->h[i]),
      .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                        ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)),
    };
  }
  const size_t n = src->n;
  pfd[n] = (struct pollfd){ .fd = lp->dst->evfd, .events = POLLIN };
  pfd[n + 1] = (struct pollfd){ .fd = lp->intr->fd, .events = POLLIN };
  int r = poll(pfd, n + 2, progress_timeout_ms(lp->prog, progress_now()));
  if (r < 0 && errno != EINTR)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "poll");
  for (size_t i = 0; r > 0 && i < n; i++) {
    int rc = 0;
    if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
      rc = nbd_aio_notify_read(src->h[i]);
    else if (pfd[i].revents & POLLOUT)
      rc = nbd_aio_notify_write(src->h[i]);
    if (rc < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "the export: %s", nbd_get_error());
  }
  if (r > 0 && pfd[n].revents && reap(lp, e) < 0)
    return -1;
  if (r > 0 && pfd[n + 1].revents)
    return interrupt_check(lp->intr, e);
  return 0;
}

struct rbd_job {
  struct source *src;
  struct rbd_sink *dst;
  bool full;
  uint64_t request_size;
  unsigned requests;
  const struct interrupt *intr;
  struct progress *prog;
};

static int rloop_init(struct rloop *lp, const struct rbd_job *job, struct sp_copy_stats *st,
                      struct sp_err *e)
{
  *lp = (struct rloop){ .src = job->src, .dst = job->dst, .full = job->full,
                        .request_size = job->request_size, .nslots = job->requests,
                        .intr = job->intr, .prog = job->prog, .st = st };
  sp_plan_init(&lp->plan, job->src->size, SP_COPY_CLUSTER, enqueue, lp);
  lp->memlen = (size_t)job->requests * job->request_size;
  lp->mem = mmap(NULL, lp->memlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  lp->slots = sp_xcalloc(lp->nslots, sizeof *lp->slots);
  if (lp->mem == MAP_FAILED) {
    lp->mem = NULL;
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%zu bytes of buffers", lp->memlen);
  }
  for (unsigned i = 0; i < lp->nslots; i++)
    lp->slots[i] = (struct slot){ .lp = lp, .buf = lp->mem + (size_t)i * job->request_size };
  return 0;
}

static int rbd_copy_run(const struct rbd_job *job, struct sp_copy_stats *st, struct sp_err *e)
{
  _cleanup_(rloop_free) struct rloop lp = { 0 };
  *st = (struct sp_copy_stats){ 0 };
  int rc = rloop_init(&lp, job, st, e);
  while (rc == 0) {
    if (refill(&lp, e) < 0 || issue(&lp, e) < 0 || dispatch(&lp, e) < 0) {
      rc = -1;
      break;
    }
    if (!lp.busy && !lp.q.n && lp.plan.pos >= job->src->size)
      break;
    progress_tick(job->prog, progress_now());
    rc = wait_io(&lp, e);
  }
  return rc;
}

/* -- the program's flow for an rbd: output ---------------------------------- */

struct rbd_run {
  struct interrupt intr;
  struct source src;
  struct rbd_sink sink;
  struct progress prog;
  struct sp_copy_stats stats;
};

static void rbd_run_free(struct rbd_run *r)
{
  rbd_sink_close(&r->sink);
  source_close(&r->src);
  interrupt_fini(&r->intr);
}

static int copy(struct rbd_run *r, const struct copy_opts *o, const char *prefix, double t0,
                struct sp_err *e)
{
  const bool full = o->level == SP_LEVEL_FULL;
  uint64_t total;
  if (copy_measure(&r->src, full, NULL, &total, e) < 0)
    return -1;
  progress_init(&r->prog, stderr, prefix, o->progress, o->progress_interval, isatty(2), t0);
  progress_set_total(&r->prog, total);
  struct rbd_job job = {
    .src = &r->src,
    .dst = &r->sink,
    .full = full,
    .request_size = o->request_size < r->src.max_request ? o->request_size
                                                         : r->src.max_request,
    .requests = o->requests,
    .intr = &r->intr,
    .prog = &r->prog,
  };
  int rc = rbd_copy_run(&job, &r->stats, e);
  progress_clear(&r->prog);
  return rc;
}

int rbd_copy_disk(const struct copy_opts *o, const char *prefix, double t0, struct sp_err *e)
{
  _cleanup_(rbd_run_free) struct rbd_run r = {
    .intr = INTERRUPT_INIT, .sink = RBD_SINK_INIT,
  };
  const struct sp_ceph_opts ceph = {
    .conf = o->ceph_conf, .user = o->ceph_user, .keyring = o->ceph_keyring,
    .timeout_s = o->ceph_timeout,
  };
  /* Signals are blocked before librados starts its threads, so they all
   * inherit the mask and the signalfd sees every one. */
  if (interrupt_init(&r.intr, e) < 0 ||
      source_open(&r.src, o->uri, o->bitmap, o->connections, e) < 0)
    return -1;
  if (o->size && o->size != r.src.size)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "the export is %" PRIu64 " bytes, STILLPOINT_DISK_SIZE says %" PRIu64,
                      r.src.size, o->size);
  if (rbd_sink_open(&r.sink, &ceph, o->output, o->parent, r.src.size, e) < 0 ||
      interrupt_check(&r.intr, e) < 0 || copy(&r, o, prefix, t0, e) < 0 ||
      rbd_sink_commit(&r.sink, e) < 0)
    return -1;
  char line[512];
  progress_format_done(line, sizeof line, prefix, &r.stats, progress_now() - t0);
  fprintf(stderr, "%s\n", line);
  return 0;
}
