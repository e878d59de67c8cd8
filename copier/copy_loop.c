#include "copy_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cleanup.h"
#include "iszero.h"
#include "options.h"
#include "xalloc.h"

/* A write-zeroes carries no payload: one request may cover much more than
 * a read (qemu turns it into zero clusters, metadata only). */
#define ZERO_MAX (1ull << 30)

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READY, SLOT_WRITING };

struct loop;

/* One request on its way: read into buf (data only), then written. */
struct slot {
  struct loop *lp;
  struct sp_seg seg;
  enum slot_state state;
  unsigned conn;    /* source connection that reads it */
  unsigned pending; /* write commands still in flight */
  uint64_t seq;     /* the file sink's operation to wait for (0: none) */
  int err;          /* errno of the first failed command */
  char *buf;
};

/* Slots form a ring used in order: head issues, wr dispatches writes,
 * tail retires.  Writes leave in disk order however the reads complete,
 * so qemu allocates the image's clusters in guest order (nbdcopy's
 * out-of-order writes fragment a qcow2 ~50x: docs/facts.md, "qemu-nbd,
 * qemu-img and qcow2"). */
struct loop {
  const struct copy_job *job;
  struct sp_copy_stats *st;
  struct slot *slots;
  unsigned nslots;
  uint64_t head, wr, tail;
  unsigned reads[SP_COPY_MAX_CONNECTIONS];
  struct sp_plan plan;
  struct sp_segq q;
  char *mem;
  size_t memlen;
  double last_io; /* when a socket last moved: a stalled export is detected from it */
};

static void loop_free(struct loop *lp)
{
  /* Buffers may still be named by commands in flight after a failure;
   * that is safe because the handles are only closed after this, and
   * closing runs no more I/O into them.  The own writer's thread is
   * another matter: it writes from them until it stops. */
  if (lp->job && lp->job->fsink)
    fsink_stop(lp->job->fsink);
  if (lp->mem)
    munmap(lp->mem, lp->memlen);
  free(lp->slots);
  sp_segq_free(&lp->q);
}

/* -- the plan, fed window by window -------------------------------------- */

static void enqueue(void *ud, const struct sp_seg *seg)
{
  struct loop *lp = ud;
  if (seg->kind == SP_SKIP || (seg->kind == SP_ZERO && lp->job->full))
    return;
  sp_segq_push(&lp->q, seg);
}

static int refill(struct loop *lp, struct sp_err *e)
{
  /* Keep a few rings' worth planned ahead; block status is cheap. */
  const uint64_t want = 4ull * lp->nslots * lp->job->request_size;
  while (lp->plan.pos < lp->job->src->size && lp->q.bytes < want) {
    if (source_map(lp->job->src, &lp->plan, e) < 0)
      return -1;
  }
  return 0;
}

struct tally {
  bool full;
  uint64_t total;
  struct sp_qcow2_map *map;
};

static void count(void *ud, const struct sp_seg *seg)
{
  struct tally *t = ud;
  if (seg->kind == SP_DATA || (seg->kind == SP_ZERO && !t->full)) {
    t->total += seg->len;
    if (t->map)
      sp_qcow2_map_mark(t->map, seg->off, seg->len, seg->kind == SP_DATA);
  }
}

int copy_measure(struct source *src, bool full, struct sp_qcow2_map *map, uint64_t *total,
                 struct sp_err *e)
{
  struct tally t = { .full = full, .map = map };
  struct sp_plan plan;
  sp_plan_init(&plan, src->size, SP_COPY_CLUSTER, count, &t);
  while (plan.pos < src->size)
    if (source_map(src, &plan, e) < 0)
      return -1;
  *total = t.total;
  return 0;
}

/* -- completions: they only record; the loop does the next step --------- */

static int read_done(void *ud, int *error)
{
  struct slot *sl = ud;
  sl->lp->reads[sl->conn]--;
  if (*error && !sl->err)
    sl->err = *error;
  sl->state = SLOT_READY;
  return 1;
}

static int write_done(void *ud, int *error)
{
  struct slot *sl = ud;
  if (*error && !sl->err)
    sl->err = *error;
  sl->pending--;
  return 1;
}

/* -- the three steps of a slot ------------------------------------------- */

static unsigned least_busy(const struct loop *lp)
{
  unsigned best = 0;
  for (unsigned i = 1; i < lp->job->src->n; i++)
    if (lp->reads[i] < lp->reads[best])
      best = i;
  return best;
}

static int issue(struct loop *lp, struct sp_err *e)
{
  const struct sp_seg *next;
  while (lp->head - lp->tail < lp->nslots && (next = sp_segq_peek(&lp->q))) {
    struct slot *sl = &lp->slots[lp->head % lp->nslots];
    sp_segq_take(&lp->q, next->kind == SP_DATA ? lp->job->request_size : ZERO_MAX, &sl->seg);
    sl->pending = 0;
    sl->seq = 0;
    sl->err = 0;
    sl->state = SLOT_READY; /* a zero range needs no read */
    lp->head++;
    if (sl->seg.kind != SP_DATA)
      continue;
    sl->conn = least_busy(lp);
    sl->state = SLOT_READING;
    lp->reads[sl->conn]++;
    nbd_completion_callback cb = { .callback = read_done, .user_data = sl };
    if (nbd_aio_pread(lp->job->src->h[sl->conn], sl->buf, sl->seg.len, sl->seg.off, cb, 0) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "reading the export: %s", nbd_get_error());
  }
  return 0;
}

/* Hands [from, from+len) of the slot's range, its bytes or zeroes, to the
 * image's own writer. */
static int put_run(struct loop *lp, struct slot *sl, uint64_t off, uint64_t wlen, const char *buf,
                   struct sp_err *e)
{
  uint64_t seq;
  if (fsink_put(lp->job->fsink, off, wlen, buf, &seq, e) < 0)
    return -1;
  if (seq)
    sl->seq = seq;
  return 0;
}

/* One write or write-zeroes of [from, from+len) of the slot's range. */
static int write_run(struct loop *lp, struct slot *sl, uint64_t from, uint64_t len, bool zero,
                     struct sp_err *e)
{
  const uint64_t off = sl->seg.off + from;
  uint64_t wlen = len;
  if (lp->job->pad_tail && off + len == lp->job->src->size && len % SP_COPY_CLUSTER) {
    /* The image holds whole clusters (qemu-nbd's compressed one is a
     * cluster longer than the disk until it is shrunk, main.c): pad with
     * zeroes, which the slot's buffer has room for because requests are
     * whole clusters. */
    wlen = (len + SP_COPY_CLUSTER - 1) / SP_COPY_CLUSTER * SP_COPY_CLUSTER;
    if (!zero)
      memset(sl->buf + from + len, 0, wlen - len);
  }
  /* The own writer hears of data that read as zeroes even in a full: it
   * laid the cluster out as data, and hashes its zeroes. */
  if (lp->job->fsink && put_run(lp, sl, off, wlen, zero ? NULL : sl->buf + from, e) < 0)
    return -1;
  if (zero && lp->job->full)
    return 0; /* a fresh image already reads zeroes there */
  /* What is counted is the disk's bytes, never the padding. */
  *(zero ? &lp->st->zeroed : &lp->st->written) += len;
  if (lp->job->fsink)
    return 0;
  nbd_completion_callback cb = { .callback = write_done, .user_data = sl };
  sl->pending++;
  int64_t rc;
  if (zero) {
    /* Zeroes, never trim: in an overlay they become zero clusters that hide
     * the parent's old data; a trim may be ignored and let it show. */
    rc = nbd_aio_zero(lp->job->dst, wlen, off, cb, 0);
  } else {
    rc = nbd_aio_pwrite(lp->job->dst, sl->buf + from, wlen, off, cb, 0);
  }
  if (rc < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "writing the image at offset %" PRIu64 ": %s", off,
                      nbd_get_error());
  return 0;
}

/* Data that reads as zeroes is written as zeroes, cluster by cluster:
 * it then costs no space, and an overlay still masks the parent. */
static int write_data(struct loop *lp, struct slot *sl, struct sp_err *e)
{
  const uint64_t len = sl->seg.len;
  uint64_t run = 0;
  bool run_zero = false;
  for (uint64_t p = 0; p < len; p += SP_COPY_CLUSTER) {
    uint64_t n = len - p < SP_COPY_CLUSTER ? len - p : SP_COPY_CLUSTER;
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

static int dispatch(struct loop *lp, struct sp_err *e)
{
  while (lp->wr != lp->head) {
    struct slot *sl = &lp->slots[lp->wr % lp->nslots];
    if (sl->state != SLOT_READY)
      break;
    if (sl->err)
      return sp_err_sys(e, SP_EXIT_FAILED, sl->err,
                        "reading %" PRIu64 " bytes at offset %" PRIu64 " from the export",
                        sl->seg.len, sl->seg.off);
    if (sl->seg.kind == SP_DATA)
      lp->st->read += sl->seg.len;
    if ((sl->seg.kind == SP_DATA ? write_data(lp, sl, e)
                                 : write_run(lp, sl, 0, sl->seg.len, true, e)) < 0)
      return -1;
    sl->state = SLOT_WRITING;
    lp->wr++;
  }
  return 0;
}

static int retire(struct loop *lp, struct sp_err *e)
{
  while (lp->tail != lp->wr) {
    struct slot *sl = &lp->slots[lp->tail % lp->nslots];
    if (sl->pending)
      break;
    if (sl->seq) {
      int err = 0;
      int64_t done = fsink_done(lp->job->fsink, &err);
      if (done < 0)
        return sp_err_sys(e, SP_EXIT_FAILED, err, "writing the image");
      if ((uint64_t)done < sl->seq)
        break;
    }
    if (sl->err)
      return sp_err_sys(e, SP_EXIT_FAILED, sl->err, "writing the image at offset %" PRIu64,
                        sl->seg.off);
    progress_add(lp->job->prog, sl->seg.len);
    sl->state = SLOT_FREE;
    lp->tail++;
  }
  return 0;
}

/* -- waiting -------------------------------------------------------------- */

static int wait_io(struct loop *lp, struct sp_err *e)
{
  const struct source *src = lp->job->src;
  struct nbd_handle *hs[SP_COPY_MAX_CONNECTIONS + 1];
  struct pollfd pfd[SP_COPY_MAX_CONNECTIONS + 3];
  size_t n = 0;
  for (size_t i = 0; i <= src->n; i++) {
    hs[n] = i < src->n ? src->h[i] : lp->job->dst;
    if (!hs[n])
      continue; /* no qemu-nbd: the own writer */
    unsigned dir = nbd_aio_get_direction(hs[n]);
    pfd[n] = (struct pollfd){
      .fd = nbd_aio_get_fd(hs[n]),
      .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                        ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)),
    };
    n++;
  }
  pfd[n] = (struct pollfd){ .fd = lp->job->intr->fd, .events = POLLIN };
  pfd[n + 1] = (struct pollfd){ .fd = lp->job->fsink ? lp->job->fsink->efd : -1,
                                .events = POLLIN };
  double now = progress_now();
  int timeout = progress_timeout_ms(lp->job->prog, now);
  if (lp->job->stall_timeout_s) {
    /* A stalled server (stuck storage, a partition) would hang the run
     * forever while the scratch file grows: bounded here. */
    double left = lp->last_io + lp->job->stall_timeout_s - now;
    if (left <= 0)
      return sp_err_set(e, SP_EXIT_FAILED, "no progress for %u s (stall_timeout_s): the export "
                        "or the output stalled", lp->job->stall_timeout_s);
    int left_ms = (int)(left * 1000) + 1;
    if (timeout < 0 || left_ms < timeout)
      timeout = left_ms;
  }
  int r = poll(pfd, n + 2, timeout);
  if (r < 0 && errno != EINTR)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "poll");
  if (r > 0)
    lp->last_io = progress_now();
  for (size_t i = 0; r > 0 && i < n; i++) {
    int rc = 0;
    if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
      rc = nbd_aio_notify_read(hs[i]);
    else if (pfd[i].revents & POLLOUT)
      rc = nbd_aio_notify_write(hs[i]);
    if (rc < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "%s: %s",
                        hs[i] == lp->job->dst ? "qemu-nbd" : "the export", nbd_get_error());
  }
  if (r > 0 && pfd[n + 1].revents)
    fsink_ack(lp->job->fsink);
  if (r > 0 && pfd[n].revents)
    return interrupt_check(lp->job->intr, e);
  return 0;
}

static int loop_init(struct loop *lp, const struct copy_job *job, struct sp_copy_stats *st,
                     struct sp_err *e)
{
  *lp = (struct loop){ .job = job, .st = st, .nslots = job->requests, .last_io = progress_now() };
  sp_plan_init(&lp->plan, job->src->size, SP_COPY_CLUSTER, enqueue, lp);
  /* One mapping for all buffers, touched once and reused for the whole
   * copy: fresh pages per request are what makes naive copiers slow here. */
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

int copy_run(const struct copy_job *job, struct sp_copy_stats *st, struct sp_err *e)
{
  _cleanup_(loop_free) struct loop lp = { 0 };
  *st = (struct sp_copy_stats){ 0 };
  if (loop_init(&lp, job, st, e) < 0)
    return -1;
  for (;;) {
    if (refill(&lp, e) < 0 || issue(&lp, e) < 0 || dispatch(&lp, e) < 0 || retire(&lp, e) < 0)
      return -1;
    if (lp.tail == lp.head && !lp.q.n && lp.plan.pos >= job->src->size)
      return 0;
    progress_tick(job->prog, progress_now());
    if (wait_io(&lp, e) < 0)
      return -1;
  }
}
