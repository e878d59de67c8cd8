#include "rbd_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "xalloc.h"

/* The newest snapshot's name (malloc'd) or NULL when the image has none. */
static int newest_snapshot(rbd_image_t image, char **out, struct sp_err *e)
{
  *out = NULL;
  int max = 16;
  for (;;) {
    _cleanup_free_ rbd_snap_info_t *snaps = sp_xcalloc((size_t)max, sizeof *snaps);
    int n = rbd_snap_list(image, snaps, &max);
    if (n == -ERANGE)
      continue; /* max now holds the count needed */
    if (n < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, -n, "listing the image's snapshots");
    /* Snapshot ids grow: the newest has the largest. */
    int best = -1;
    for (int i = 0; i < n; i++)
      if (best < 0 || snaps[i].id > snaps[best].id)
        best = i;
    if (best >= 0)
      *out = sp_xstrdup(snaps[best].name);
    rbd_snap_list_end(snaps);
    return 0;
  }
}

static int check_image(struct rbd_sink *s, const struct sp_rbd_spec *par, uint64_t size,
                       const char *output, struct sp_err *e)
{
  uint64_t have;
  int rc = rbd_get_size(s->image, &have);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "%s: size", output);
  if (have != size)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "%s: the image is %" PRIu64 " bytes, the disk %" PRIu64
                      " (was the disk resized? take a full)",
                      output, have, size);
  bool exists = false;
  if ((rc = rbd_snap_exists(s->image, s->out.snap, &exists)) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "%s: snapshot lookup", output);
  if (exists)
    return sp_err_set(e, SP_EXIT_FAILED, "%s exists already: a point is never replaced", output);
  _cleanup_free_ char *newest = NULL;
  if (newest_snapshot(s->image, &newest, e) < 0)
    return sp_err_prefix(e, "%s", output);
  if (!newest || strcmp(newest, par->snap))
    return sp_err_set(e, SP_EXIT_FAILED,
                      "%s: the image's newest snapshot is %s, not the parent %s: its head is "
                      "not the parent's disk (take a full)",
                      output, newest ? newest : "(none)", par->snap);
  return 0;
}

static int open_image(struct rbd_sink *s, const char *output, const char *parent, uint64_t size,
                      struct sp_err *e)
{
  _cleanup_(sp_rbd_spec_free) struct sp_rbd_spec par = { 0 };
  if (parent) {
    if (sp_rbd_spec_parse(parent, &par, e) < 0)
      return -1;
    if (!par.snap || !sp_rbd_spec_same_image(&s->out, &par))
      return sp_err_set(e, SP_EXIT_USAGE,
                        "parent %s: expected the output's image at the parent's snapshot", parent);
  }
  int rc;
  if (!parent) {
    /* A new image with layering, so restore --instant can clone its
     * snapshots (features 0 would have none: clones fail with ENOSYS);
     * no exclusive-lock or object-map: one writer per image already,
     * held by the VM's lock in the pool. */
    int order = 0;
    rc = rbd_create2(s->io, s->out.image, size, RBD_FEATURE_LAYERING, &order);
    if (rc == -EEXIST)
      return sp_err_set(e, SP_EXIT_FAILED,
                        "%s: the image exists already; a full point writes a new one", output);
    if (rc < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, -rc, "creating the RBD image of %s", output);
    s->created = true;
  }
  rc = rbd_open(s->io, s->out.image, &s->image, NULL);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "opening the RBD image of %s%s", output,
                      rc == -ENOENT ? " (an incremental needs its chain's image)" : "");
  return parent ? check_image(s, &par, size, output, e) : 0;
}

/* librbd may keep a pointer to a write's buffer until the write
 * completes unless it copies it; a failed copy frees its buffers at once. */
static int copy_writes(struct rbd_sink *s, struct sp_err *e)
{
  int rc = rados_conf_set(s->cluster, "rbd_disable_zero_copy_writes", "true");
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "librbd configuration");
  return 0;
}

int rbd_sink_open(struct rbd_sink *s, const struct sp_ceph_opts *ceph, const char *output,
                  const char *parent, uint64_t size, struct sp_err *e)
{
  if (sp_rbd_spec_parse(output, &s->out, e) < 0)
    return -1;
  if (!s->out.snap)
    return sp_err_set(e, SP_EXIT_USAGE, "%s: name the snapshot to create (IMAGE@POINT-ID)",
                      output);
  if (sp_ceph_connect(ceph, &s->cluster, e) < 0 ||
      copy_writes(s, e) < 0 ||
      sp_ceph_ioctx(s->cluster, s->out.pool, s->out.ns, &s->io, e) < 0 ||
      open_image(s, output, parent, size, e) < 0)
    return -1;
  /* Completions are collected by the copy loop's poll(): librbd bumps the
   * eventfd and queues them for rbd_poll_io_events. */
  s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->evfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "eventfd");
  int rc = rbd_set_image_notification(s->image, s->evfd, EVENT_TYPE_EVENTFD);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "librbd completion notification");
  return 0;
}

void rbd_sink_failed(struct rbd_sink *s, int err)
{
  if (err == ETIMEDOUT)
    s->broken = true;
}

int rbd_sink_commit(struct rbd_sink *s, struct sp_err *e)
{
  int rc = rbd_flush(s->image);
  if (rc < 0) {
    rbd_sink_failed(s, -rc);
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "flushing the RBD image");
  }
  /* No quiesce: nothing maps this image (rbd-nbd would be asked to). */
  rc = rbd_snap_create2(s->image, s->out.snap, RBD_SNAP_CREATE_SKIP_QUIESCE, NULL, NULL);
  if (rc < 0) {
    rbd_sink_failed(s, -rc);
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "creating the snapshot %s", s->out.snap);
  }
  s->committed = true;
  return 0;
}

void rbd_sink_close(struct rbd_sink *s)
{
  if (s->broken) {
    /* Deliberately not closed (see rbd_sink.h); the eventfd is ours. */
    if (s->evfd >= 0)
      close(s->evfd);
    sp_rbd_spec_free(&s->out);
    *s = (struct rbd_sink)RBD_SINK_INIT;
    return;
  }
  if (s->image)
    rbd_close(s->image);
  if (s->created && !s->committed && s->io)
    rbd_remove(s->io, s->out.image);
  if (s->io)
    rados_ioctx_destroy(s->io);
  if (s->cluster)
    rados_shutdown(s->cluster);
  if (s->evfd >= 0)
    close(s->evfd);
  sp_rbd_spec_free(&s->out);
  *s = (struct rbd_sink)RBD_SINK_INIT;
}
