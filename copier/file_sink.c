#include "file_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"

struct sink_op {
  uint64_t host_off;
  const void *buf;
  size_t len;
};

/* Contiguous operations the writer joins into one pwritev: fewer, larger
 * writes for the disk (requests are 1 MiB). */
enum { BATCH_OPS = 32, BATCH_BYTES = 8 << 20, DIRECT_ALIGN = 4096 };

static uint64_t data_start(const struct file_sink *s)
{
  return sp_qcow2_data_at(&s->layout) * SP_QCOW2_CLUSTER;
}

static int write_iov(int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pwritev(fd, iov, n, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r < 0 ? errno : EIO;
    off += (uint64_t)r;
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

/* Takes a batch of operations that continue each other on the file. */
static int take_batch(struct file_sink *s, struct iovec *iov, uint64_t *off)
{
  int n = 0;
  size_t bytes = 0;
  uint64_t end = 0;
  while (s->taken < s->submitted && n < BATCH_OPS) {
    const struct sink_op *op = &s->ops[s->taken % s->cap];
    if (n && (op->host_off != end || bytes + op->len > BATCH_BYTES))
      break;
    if (!n)
      *off = op->host_off;
    iov[n++] = (struct iovec){ .iov_base = (void *)op->buf, .iov_len = op->len };
    bytes += op->len;
    end = op->host_off + op->len;
    s->taken++;
  }
  return n;
}

static void *writer(void *arg)
{
  struct file_sink *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->stop && s->taken == s->submitted)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->taken == s->submitted)
      break; /* stopped, nothing left */
    struct iovec iov[BATCH_OPS];
    uint64_t off = 0;
    int n = take_batch(s, iov, &off);
    const bool failed = s->err != 0;
    pthread_mutex_unlock(&s->mu);
    /* After a failure the rest is only counted: the copy is failing. */
    int err = failed ? 0 : write_iov(s->fd, iov, n, off);
    pthread_mutex_lock(&s->mu);
    if (err && !s->err)
      s->err = err;
    s->done += (uint64_t)n;
    pthread_cond_broadcast(&s->cv);
    const uint64_t one = 1;
    if (write(s->efd, &one, sizeof one) < 0) {
      /* The counter cannot overflow at one per batch; poll wakes anyway. */
    }
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

struct meta_ctx {
  struct file_sink *s;
  int err;
};

static int put_meta(void *ud, uint64_t index, const unsigned char *buf)
{
  struct meta_ctx *c = ud;
  sp_sha256_update(c->s->hash, buf, SP_QCOW2_CLUSTER);
  struct iovec iov = { .iov_base = (void *)buf, .iov_len = SP_QCOW2_CLUSTER };
  c->err = write_iov(c->s->fd, &iov, 1, index * SP_QCOW2_CLUSTER);
  return c->err;
}

/* O_DIRECT keeps the image out of the page cache (a hypervisor's cache is
 * its guests'), and the writes reach the disk during the copy instead of
 * in one flush at its end; a file system that refuses it gets the page
 * cache and the same final fdatasync. */
static void try_direct(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    (void)fcntl(fd, F_SETFL, fl | O_DIRECT);
}

int fsink_open(struct file_sink *s, int fd, uint64_t vsize, const struct sp_qcow2_map *map,
               const char *backing, uint64_t max_ops, struct sp_err *e)
{
  *s = (struct file_sink)FILE_SINK_INIT;
  s->fd = fd;
  if (sp_qcow2_layout(&s->layout, vsize, map, backing, e) < 0 || !(s->hash = sp_sha256_new(e)))
    return -1;
  s->cap = max_ops ? max_ops : 1;
  s->ops = calloc(s->cap, sizeof *s->ops);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->holes = calloc(s->layout.data / 64 + 1, sizeof *s->holes);
  s->zeros = calloc(1, SP_QCOW2_CLUSTER); /* only hashed, never written: no alignment */
  if (s->efd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "the image writer's eventfd");
  /* The metadata's cluster is written with O_DIRECT: aligned. */
  if (!s->ops || !s->holes || !s->zeros ||
      posix_memalign((void **)&s->meta, DIRECT_ALIGN, SP_QCOW2_CLUSTER))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "the image writer's buffers");
  /* The whole length at once: no write extends the file, and data
   * clusters that read as zeroes stay holes. */
  if (ftruncate(fd, (off_t)(s->layout.total * SP_QCOW2_CLUSTER)) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot size the image to %" PRIu64 " bytes",
                      s->layout.total * SP_QCOW2_CLUSTER);
  try_direct(fd);
  struct meta_ctx c = { .s = s };
  if (sp_qcow2_render_head(&s->layout, s->meta, put_meta, &c))
    return sp_err_sys(e, SP_EXIT_FAILED, c.err, "writing the image's header");
  if ((errno = pthread_create(&s->thread, NULL, writer, s)))
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "starting the image writer");
  s->running = true;
  return 0;
}

/* Is any data cluster in [s->next_g, to) not handed over? */
static bool data_skipped(const struct file_sink *s, uint64_t to, uint64_t *which)
{
  for (uint64_t g = s->next_g; g < to; g++)
    if (sp_qcow2_map_is_data(s->layout.map, g)) {
      *which = g;
      return true;
    }
  return false;
}

static int mismatch(uint64_t g, const char *what, struct sp_err *e)
{
  return sp_err_set(e, SP_EXIT_FAILED, "cluster at offset %" PRIu64 " %s than the export's "
                    "block status said before the copy (did the export change?)",
                    g * SP_QCOW2_CLUSTER, what);
}

static int submit(struct file_sink *s, uint64_t host_off, const void *buf, size_t len,
                  uint64_t *seq, struct sp_err *e)
{
  pthread_mutex_lock(&s->mu);
  while (s->submitted - s->done >= s->cap && !s->err)
    pthread_cond_wait(&s->cv, &s->mu);
  const int err = s->err;
  if (!err) {
    s->ops[s->submitted % s->cap] = (struct sink_op){ host_off, buf, len };
    *seq = ++s->submitted;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return err ? sp_err_sys(e, SP_EXIT_FAILED, err, "writing the image") : 0;
}

int fsink_put(struct file_sink *s, uint64_t off, uint64_t len, const void *buf, uint64_t *seq,
              struct sp_err *e)
{
  const struct sp_qcow2_map *m = s->layout.map;
  *seq = 0;
  if (off % SP_QCOW2_CLUSTER || len % SP_QCOW2_CLUSTER)
    return sp_err_set(e, SP_EXIT_FAILED, "the image writer got a range that is not whole "
                      "clusters (offset %" PRIu64 ", %" PRIu64 " bytes)", off, len);
  const uint64_t g0 = off / SP_QCOW2_CLUSTER, n = len / SP_QCOW2_CLUSTER;
  uint64_t missed;
  if (g0 < s->next_g)
    return mismatch(g0, "came again, or out of order, rather", e);
  if (data_skipped(s, g0, &missed))
    return mismatch(missed, "was never copied, rather", e);
  const uint64_t k0 = s->next_k;
  for (uint64_t i = 0; i < n; i++) {
    const uint64_t g = g0 + i;
    if (sp_qcow2_map_is_data(m, g)) {
      /* A data cluster that read as zeroes stays a hole of the file. */
      if (!buf)
        s->holes[s->next_k / 64] |= 1ull << (s->next_k % 64);
      sp_sha256_update(s->hash, buf ? (const unsigned char *)buf + i * SP_QCOW2_CLUSTER
                                    : s->zeros, SP_QCOW2_CLUSTER);
      s->next_k++;
    } else if (buf || !sp_qcow2_map_is_zero(m, g)) {
      return mismatch(g, buf ? "holds data, more" : "was to be zero, other", e);
    }
  }
  s->next_g = g0 + n;
  if (!buf)
    return 0;
  return submit(s, data_start(s) + k0 * SP_QCOW2_CLUSTER, buf, (size_t)len, seq, e);
}

int64_t fsink_done(struct file_sink *s, int *err)
{
  pthread_mutex_lock(&s->mu);
  int64_t done = s->err ? -1 : (int64_t)s->done;
  *err = s->err;
  pthread_mutex_unlock(&s->mu);
  return done;
}

void fsink_ack(struct file_sink *s)
{
  uint64_t v;
  if (read(s->efd, &v, sizeof v) < 0) {
    /* EAGAIN: someone else already read it. */
  }
}

void fsink_stop(struct file_sink *s)
{
  if (!s->running)
    return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->running = false;
}

int fsink_finish(struct file_sink *s, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e)
{
  fsink_stop(s); /* the writer drains the ring before it stops */
  uint64_t missed;
  if (s->err)
    return sp_err_sys(e, SP_EXIT_FAILED, s->err, "writing the image");
  if (data_skipped(s, s->layout.map->nclusters, &missed))
    return mismatch(missed, "was never copied, rather", e);
  struct meta_ctx c = { .s = s };
  if (sp_qcow2_render_tail(&s->layout, s->holes, s->meta, put_meta, &c))
    return sp_err_sys(e, SP_EXIT_FAILED, c.err, "writing the image's tables");
  if (fdatasync(s->fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot make the image durable (fdatasync)");
  return sp_sha256_end(s->hash, hex, e);
}

void fsink_close(struct file_sink *s)
{
  fsink_stop(s);
  if (s->ops) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
  }
  free(s->ops);
  free(s->zeros);
  free(s->meta);
  free(s->holes);
  sp_sha256_free(s->hash);
  if (s->efd >= 0)
    close(s->efd);
  *s = (struct file_sink)FILE_SINK_INIT;
}
