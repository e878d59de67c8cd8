#include "nbd_source.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define ALLOC_CONTEXT "base:allocation"
/* One block status request covers at most this much: the NBD length
 * field is 32 bits, and qemu answers a window this size in well under a
 * millisecond from its metadata. */
#define MAP_WINDOW (1ull << 31)

/* A peer that vanished (a host down, a network partition with
 * transport = tcp) sends no reset: without keepalive a read waits for a
 * reply forever.  After KEEP_IDLE s of silence the kernel probes every
 * KEEP_INTVL s and drops the connection after KEEP_CNT unanswered probes;
 * TCP_USER_TIMEOUT bounds data left unacknowledged just as long.  The
 * read then fails at once, before stall_timeout_s (default 300) would. */
enum { KEEP_IDLE = 30, KEEP_INTVL = 10, KEEP_CNT = 3 };

/* Set on the connection libnbd made, after its handshake: libnbd 1.14
 * connects URIs itself, and connecting our own socket instead
 * (nbd_connect_socket) would mean parsing nbds:// URIs with their TLS
 * parameters a second time.  A unix socket is left as it is. */
static int keepalive(struct nbd_handle *h, const char *uri, struct sp_err *e)
{
  int fd = (int)nbd_aio_get_fd(h);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, fd < 0 ? EBADF : errno, "%s: its socket", uri);
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
    return 0;
  int on = 1, idle = KEEP_IDLE, intvl = KEEP_INTVL, cnt = KEEP_CNT;
  unsigned user_ms = (KEEP_IDLE + KEEP_INTVL * KEEP_CNT) * 1000u;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s: cannot set TCP keepalive", uri);
  return 0;
}

static int connect_one(struct nbd_handle **hp, const char *uri, const char *bitmap, size_t i,
                       struct sp_err *e)
{
  struct nbd_handle *h = nbd_create();
  if (!h)
    return sp_err_set(e, SP_EXIT_FAILED, "libnbd: %s", nbd_get_error());
  *hp = h;
  char name[32];
  snprintf(name, sizeof name, "source%zu", i);
  /* The URI comes from stillpoint (or whoever runs the copier), not from
   * the export: it may name files here, as the client certificate
   * directory of nbds://...?tls-certificates=DIR (transport = tcp). */
  if (nbd_set_handle_name(h, name) < 0 || nbd_set_uri_allow_local_file(h, true) < 0 ||
      (i == 0 && nbd_add_meta_context(h, ALLOC_CONTEXT) < 0) ||
      (i == 0 && bitmap && nbd_add_meta_context(h, bitmap) < 0) ||
      nbd_connect_uri(h, uri) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot connect to %s: %s", uri, nbd_get_error());
  return keepalive(h, uri, e);
}

static int read_limits(struct source *s, const char *uri, struct sp_err *e)
{
  struct nbd_handle *h = s->h[0];
  int64_t size = nbd_get_size(h);
  int64_t min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
  int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
  if (size < 0 || min < 0 || max < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %s", uri, nbd_get_error());
  s->size = (uint64_t)size;
  /* 0 means "not advertised": then the NBD defaults (1 byte, 32 MiB). */
  s->min_block = min ? (uint64_t)min : 1;
  s->max_request = max ? (uint64_t)max : SP_COPY_MAX_REQUEST;
  /* Requests are whole 64 KiB clusters: the server must take that much
   * in one read, and its minimum must divide it. */
  if (SP_COPY_CLUSTER % s->min_block || s->max_request < SP_COPY_CLUSTER)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "%s: block sizes %" PRIu64 "..%" PRIu64 " do not fit 64 KiB clusters", uri,
                      s->min_block, s->max_request);
  s->max_request -= s->max_request % SP_COPY_CLUSTER;
  return 0;
}

int source_open(struct source *s, const char *uri, const char *bitmap, unsigned conns,
                struct sp_err *e)
{
  *s = (struct source){ .bitmap = bitmap, .n = 1 };
  if (connect_one(&s->h[0], uri, bitmap, 0, e) < 0)
    return -1;
  s->has_alloc = nbd_can_meta_context(s->h[0], ALLOC_CONTEXT) == 1;
  if (bitmap && nbd_can_meta_context(s->h[0], bitmap) != 1)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "%s has no block status context %s: no incremental bitmap for this disk "
                      "(was the backup job started with <incremental>?)",
                      uri, bitmap);
  if (read_limits(s, uri, e) < 0)
    return -1;
  /* More connections only where the server says they see the same data;
   * one that fails is simply not used. */
  if (conns > 1 && nbd_can_multi_conn(s->h[0]) == 1) {
    for (size_t i = 1; i < conns; i++) {
      struct sp_err ignored = { 0 };
      if (connect_one(&s->h[i], uri, NULL, i, &ignored) < 0) {
        nbd_close(s->h[i]);
        s->h[i] = NULL;
        break;
      }
      s->n++;
    }
  }
  return 0;
}

static int extent_cb(void *ud, const char *context, uint64_t offset, uint32_t *entries,
                     size_t nr_entries, int *error)
{
  struct source *s = ud;
  struct sp_extents *x = !strcmp(context, ALLOC_CONTEXT)         ? &s->alloc
                         : s->bitmap && !strcmp(context, s->bitmap) ? &s->dirty
                                                                     : NULL;
  if (*error && !s->map_err)
    s->map_err = *error;
  for (size_t i = 0; x && i + 1 < nr_entries; i += 2)
    sp_extents_push(x, entries[i], entries[i + 1]);
  return 0;
}

static void feed_plan(void *ud, uint64_t off, uint64_t len, enum sp_kind kind)
{
  sp_plan_feed(ud, off, len, kind);
}

int source_map(struct source *s, struct sp_plan *plan, struct sp_err *e)
{
  const uint64_t off = plan->pos;
  uint64_t count = s->size - off < MAP_WINDOW ? s->size - off : MAP_WINDOW;
  sp_extents_reset(&s->alloc);
  sp_extents_reset(&s->dirty);
  s->map_err = 0;
  if (count && (s->has_alloc || s->bitmap) &&
      nbd_block_status(s->h[0], count, off,
                       (nbd_extent_callback){ .callback = extent_cb, .user_data = s }, 0) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "block status at offset %" PRIu64 ": %s", off,
                      nbd_get_error());
  if (s->map_err)
    return sp_err_sys(e, SP_EXIT_FAILED, s->map_err, "block status at offset %" PRIu64, off);
  uint64_t end = sp_extents_classify(s->has_alloc ? &s->alloc : NULL,
                                     s->bitmap ? &s->dirty : NULL, off, off + count, feed_plan,
                                     plan);
  if (end == off && count)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "the server returned no block status at offset %" PRIu64, off);
  if (plan->pos == s->size)
    sp_plan_finish(plan);
  return 0;
}

void source_close(struct source *s)
{
  for (size_t i = 0; i < s->n; i++)
    nbd_close(s->h[i]);
  sp_extents_free(&s->alloc);
  sp_extents_free(&s->dirty);
  *s = (struct source){ 0 };
}
