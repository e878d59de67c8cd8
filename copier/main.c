/* stillpoint-copy: the default copier.  One disk of a backup point: the
 * export's allocated (full) or changed (inc, diff) clusters into a qcow2
 * image or overlay, laid out and written by the copier itself and hashed
 * as it passes (through qemu-nbd when compressed), made durable, then
 * named.  The steps below are the whole program; each lives in the file
 * named for it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "backing_path.h"
#include "cleanup.h"
#include "copy_loop.h"
#include "err.h"
#include "file_sink.h"
#include "interrupt.h"
#include "log.h"
#include "nbd_source.h"
#include "options.h"
#include "part_file.h"
#include "progress.h"
#include "qcow2_sink.h"
#include "qemu_img.h"
#include "rbd_copy.h"
#include "rbd_spec.h"
#include "tools.h"

struct run {
  const struct copy_opts *o;
  const char *prefix; /* "stillpoint-copy: <disk>" */
  double t0;
  struct tools tools;
  struct interrupt intr;
  struct source src;
  struct image_info parent;
  struct image_info_run parent_run; /* qemu-img info of the parent, while it runs */
  char *backing; /* the parent relative to the output's directory */
  struct part_file part;
  struct sink sink;            /* qemu-nbd: compressed images */
  struct sp_qcow2_map map;     /* the own writer's: every other image */
  struct file_sink fsink;
  char sha256[SP_SHA256_HEX_LEN + 1]; /* of the image, when the own writer wrote it */
  struct progress prog;
  struct sp_copy_stats stats;
};

/* In reverse order of creation: qemu-nbd ends before its .part is removed. */
static void run_free(struct run *r)
{
  qemu_img_info_stop(&r->parent_run);
  sink_close(&r->sink);
  fsink_close(&r->fsink);
  sp_qcow2_map_free(&r->map);
  part_discard(&r->part);
  free(r->backing);
  source_close(&r->src);
  interrupt_fini(&r->intr);
  tools_free(&r->tools);
}

/* The parent's qemu-img info, started: it runs while the export is
 * opened and the output created (check_parent() reads it). */
static int check_parent_start(struct run *r, struct sp_err *e)
{
  const char *p = r->o->parent;
  if (!p)
    return 0;
  if (access(p, R_OK) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "parent image %s", p);
  if (qemu_img_info_start(r->tools.qemu_img, p, &r->parent_run, e) < 0)
    return sp_err_prefix(e, "parent image %s", p);
  return 0;
}

static int check_parent(struct run *r, struct sp_err *e)
{
  const char *p = r->o->parent;
  if (!p)
    return 0;
  if (qemu_img_info_finish(&r->parent_run, p, &r->parent, e) < 0)
    return sp_err_prefix(e, "parent image %s", p);
  if (strcmp(r->parent.format, "qcow2"))
    return sp_err_set(e, SP_EXIT_FAILED, "parent image %s is %s, not qcow2", p,
                      r->parent.format);
  return 0;
}

static int check_sizes(struct run *r, struct sp_err *e)
{
  const uint64_t size = r->src.size;
  if (r->o->size && r->o->size != size)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "the export is %" PRIu64 " bytes, STILLPOINT_DISK_SIZE says %" PRIu64,
                      size, r->o->size);
  if (r->o->parent && r->parent.virtual_size != size)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "parent image %s has a virtual size of %" PRIu64
                      " bytes, the disk has %" PRIu64 " (was the disk resized? take a full)",
                      r->o->parent, r->parent.virtual_size, size);
  return 0;
}

/* qemu's compress filter works in whole clusters and refuses, at open, an
 * image whose size is not a multiple of one.  A disk of such a size gets
 * an image one partial cluster longer while it is written compressed, and
 * is shrunk to the disk's size before it is named (a compressed cluster
 * that straddles the new end stays valid). */
static uint64_t image_size(const struct run *r)
{
  const uint64_t size = r->src.size;
  if (!r->o->compress || size % SP_COPY_CLUSTER == 0)
    return size;
  return size + SP_COPY_CLUSTER - size % SP_COPY_CLUSTER;
}

static int create_image(struct run *r, struct sp_err *e)
{
  if (part_create(&r->part, r->o->output, e) < 0)
    return -1;
  if (r->o->parent) {
    _cleanup_free_ char *real = realpath(r->o->parent, NULL);
    if (!real || !(r->backing = sp_backing_relpath(r->part.dir, real)))
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "parent image %s", r->o->parent);
  }
  /* The own writer lays the image out itself, once it knows the export's
   * block status (copy()). */
  if (r->o->compress && qemu_img_create(r->tools.qemu_img, r->part.part, image_size(r),
                                        r->backing, r->o->compress, e) < 0)
    return -1;
  return part_check(&r->part, e);
}

/* The output, created while the parent's check runs: a parent that
 * fails it fails the creation too (qemu-img create opens it as qcow2,
 * with its chain), and its own error says why.  On any failure the .part
 * is removed (run_free). */
static int create_checked(struct run *r, struct sp_err *e)
{
  struct sp_err ce = { 0 };
  int rc = create_image(r, &ce);
  if (check_parent(r, e) < 0 || check_sizes(r, e) < 0)
    return -1;
  if (rc < 0)
    *e = ce;
  return rc;
}

static int start_qemu_nbd(struct run *r, struct sp_err *e)
{
  if (!r->o->compress)
    return 0;
  if (interrupt_suspend(&r->intr, e) < 0)
    return -1;
  int rc = sink_open(&r->sink, r->tools.env, r->tools.qemu_nbd, r->part.part, r->o->compress, e);
  interrupt_resume(&r->intr);
  return rc;
}

static int copy(struct run *r, struct sp_err *e)
{
  const bool full = r->o->level == SP_LEVEL_FULL;
  const bool own = !r->o->compress;
  uint64_t total;
  if ((own && sp_qcow2_map_init(&r->map, r->src.size, e) < 0) ||
      copy_measure(&r->src, full, own ? &r->map : NULL, &total, e) < 0)
    return -1;
  const uint64_t request_size = r->o->request_size < r->src.max_request ? r->o->request_size
                                                                        : r->src.max_request;
  /* One operation per run of data in a request, at most. */
  if (own && fsink_open(&r->fsink, r->part.fd, r->src.size, &r->map, r->backing,
                        (uint64_t)r->o->requests * (request_size / SP_COPY_CLUSTER + 1), e) < 0)
    return -1;
  progress_init(&r->prog, stderr, r->prefix, r->o->progress, r->o->progress_interval,
                isatty(2), r->t0);
  progress_set_total(&r->prog, total);
  struct copy_job job = {
    .src = &r->src,
    .dst = own ? NULL : r->sink.h,
    .fsink = own ? &r->fsink : NULL,
    .full = full,
    .pad_tail = own || image_size(r) != r->src.size,
    .request_size = request_size,
    .requests = r->o->requests,
    .stall_timeout_s = r->o->stall_timeout_s,
    .intr = &r->intr,
    .prog = &r->prog,
  };
  int rc = copy_run(&job, &r->stats, e);
  progress_clear(&r->prog);
  if (rc < 0 && !own)
    sink_explain(&r->sink, e);
  if (rc == 0 && own)
    rc = fsink_finish(&r->fsink, r->sha256, e);
  return rc;
}

static int finish(struct run *r, struct sp_err *e)
{
  if ((r->o->compress && sink_finish(&r->sink, r->part.part, e) < 0) ||
      (image_size(r) != r->src.size &&
       qemu_img_shrink(r->tools.qemu_img, r->part.part, r->src.size, e) < 0) ||
      part_commit(&r->part, e) < 0)
    return -1;
  char line[512];
  progress_format_done(line, sizeof line, r->prefix, &r->stats, progress_now() - r->t0);
  /* The coordinator puts the hash in SHA256SUMS instead of reading the
   * image again (agent/backup_copy.c). */
  fprintf(stderr, "%s%s%s\n", line, r->sha256[0] ? ", image sha256 " : "", r->sha256);
  return 0;
}

static int copy_disk(struct run *r, struct sp_err *e)
{
  const struct copy_opts *o = r->o;
  if (interrupt_init(&r->intr, e) < 0 || tools_find(&r->tools, o->compress, e) < 0 ||
      part_preflight(o->output, e) < 0 || check_parent_start(r, e) < 0 ||
      source_open(&r->src, o->uri, o->bitmap, o->connections, e) < 0 ||
      create_checked(r, e) < 0 || start_qemu_nbd(r, e) < 0 || copy(r, e) < 0 ||
      finish(r, e) < 0)
    return -1;
  return 0;
}

static const char *env_lookup(const char *name)
{
  return getenv(name);
}

int main(int argc, char *argv[])
{
  const double t0 = progress_now();
  struct sp_err e = { 0 };
  _cleanup_(copy_opts_free) struct copy_opts o = { 0 };
  if (copy_opts_parse(argc, argv, env_lookup, &o, &e) < 0) {
    fprintf(stderr, "stillpoint-copy: error: %s (see --help)\n", e.msg);
    return e.code == SP_EXIT_USAGE ? SP_EXIT_USAGE : SP_EXIT_FAILED;
  }
  if (o.help) {
    copy_usage(stdout);
    return SP_EXIT_OK;
  }
  if (o.version) {
    printf("stillpoint-copy %s\n", STILLPOINT_VERSION);
    return SP_EXIT_OK;
  }
  _cleanup_free_ char *prefix = NULL;
  if (asprintf(&prefix, "stillpoint-copy: %s", o.disk) < 0)
    return SP_EXIT_FAILED;
  const struct sp_log log = { .prog = prefix };
  _cleanup_(run_free) struct run r = {
    .o = &o, .prefix = prefix, .t0 = t0, .intr = INTERRUPT_INIT, .part = PART_FILE_INIT,
    .sink = SINK_INIT, .fsink = FILE_SINK_INIT, .parent_run = IMAGE_INFO_RUN_INIT,
  };
  /* rbd:POOL/IMAGE@SNAP: a point in Ceph (docs/design.md, "Points in Ceph"). */
  const bool rbd = sp_rbd_spec_is(o.output);
  if ((rbd ? rbd_copy_disk(&o, prefix, t0, &e) : copy_disk(&r, &e)) < 0) {
    sp_error(&log, "%s", e.msg);
    /* Only a usage error is 2: the contract knows 0, 1 and 2. */
    return e.code == SP_EXIT_USAGE ? SP_EXIT_USAGE : SP_EXIT_FAILED;
  }
  return SP_EXIT_OK;
}
