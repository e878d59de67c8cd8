#include "restore_disks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "image_check.h"
#include "restore_plan.h"
#include "sha256.h"
#include "xalloc.h"

static int qemu_img(char *const argv[], const int *fds, size_t nfds, struct sp_err *e)
{
  struct sp_run_result r;
  if (sp_run_fds(argv, fds, nfds, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int rc = 0;
  if (r.status != 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-img %s failed: %s", argv[1], r.err ? r.err : "");
  sp_run_result_free(&r);
  return rc;
}

static int made_add(struct restore_made_list *made, int dir_fd, const char *name,
                    const struct stat *st, struct sp_err *e)
{
  made->v = sp_xreallocarray(made->v, made->n + 1, sizeof *made->v);
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "restore");
  made->v[made->n++] = (struct restore_made){ .dir_fd = fd, .name = sp_xstrdup(name),
                                              .st = *st };
  return 0;
}

/* A private directory of ours inside the destination: nobody else can
 * put anything in it while qemu-img writes there by name. */
static int staging_make(int dir_fd, char name[64], struct sp_err *e)
{
  unsigned char r[6];
  _cleanup_close_ int u = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  for (int tries = 0; tries < 100; tries++) {
    if (u < 0 || read(u, r, sizeof r) != (ssize_t)sizeof r)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "/dev/urandom");
    snprintf(name, 64, ".stillpoint-restore-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5]);
    if (mkdirat(dir_fd, name, 0700) == 0) {
      int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 || fchmod(fd, 0700) < 0) {
        int err = errno;
        if (fd >= 0)
          close(fd);
        unlinkat(dir_fd, name, AT_REMOVEDIR);
        return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot prepare %s", name);
      }
      return fd;
    }
    if (errno != EEXIST)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create a staging directory");
  }
  return sp_err_set(e, SP_EXIT_FAILED, "cannot create a staging directory");
}

/* Out of staging into the destination, never over anything; 0600. */
static int put_in_place(int sfd, int dir_fd, const char *dir, const char *name,
                        struct restore_made_list *made, struct sp_err *e)
{
  _cleanup_close_ int fd = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fchmod(fd, 0600) < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot finish %s", name);
  if (renameat2(sfd, name, dir_fd, name, RENAME_NOREPLACE) < 0)
    return errno == EEXIST
             ? sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s exists: refusing to overwrite it (restore "
                          "the disks elsewhere with --disks-to DIR)", dir, name)
             : sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot put %s/%s in place", dir, name);
  return made_add(made, dir_fd, name, &st, e);
}

/* Whether files made in the staging directory take O_DIRECT: tried on
 * a probe file there (the directory is ours alone). */
static bool staging_direct_ok(int sfd)
{
  static const char probe[] = ".direct-probe";
  int fd = openat(sfd, probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return false;
  bool ok = sp_direct_io_ok(fd);
  close(fd);
  unlinkat(sfd, probe, 0);
  return ok;
}

/* qemu-img's cache mode for one side of a copy (chain images in, sfd out):
 * "none" (O_DIRECT) where its file system takes it.  Through the page
 * cache, the first touch of every fresh page qemu-img wrote cost about
 * 1.6 s of system time per GiB here (3.6 s of 4.1 s of CPU for a 2.1 GiB
 * disk; -t none: 0.5 s), the put_in_place() fsync then wrote it all back,
 * and the hash pass had read the chain with O_DIRECT, so none of it was
 * cached for the reads either (docs/facts.md, "qemu-nbd, qemu-img and
 * qcow2"). */
static const char *convert_cache(bool direct)
{
  return direct ? "none" : "writeback";
}

/* The chain's images were hashed through these same descriptors before
 * anything was written (restore_disk()'s contract): hashing them again
 * here read and hashed every disk a second time. */
static int flatten(const struct sp_disk_chain *c, int sfd, const char *name, const char *format,
                   struct sp_err *e)
{
  _cleanup_free_ int *lfds = NULL;
  size_t n;
  _cleanup_free_ char *json = sp_chain_json(c, 0, 4, &lfds, &n);
  if (!json)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: its chain has no image format qemu-img can "
                      "be given", c->target);
  _cleanup_free_ int *fds = sp_xcalloc(n + 1, sizeof *fds);
  _cleanup_free_ char *out = sp_xasprintf("/proc/self/fd/3/%s", name);
  fds[0] = sfd;
  memcpy(fds + 1, lfds, n * sizeof *fds);
  const char *src_cache = convert_cache(n > 0 && sp_direct_io_all(lfds, n));
  const char *dst_cache = convert_cache(staging_direct_ok(sfd));
  char *argv[] = { "qemu-img", "convert", "-q", "-T", (char *)src_cache, "-t", (char *)dst_cache,
                   "-O", (char *)format, json, out, NULL };
  return qemu_img(argv, fds, n + 1, e);
}

/* The i-th image of a kept chain: file, then file.<id> for its parents. */
static char *chain_copy_name(const char *file, const struct sp_chain_link *l, size_t i)
{
  return i == 0 ? sp_xstrdup(file) : sp_xasprintf("%s.%s", file, l->id);
}

/* Copies every image, hashing it as it goes (no second read), checks the
 * copy's header again, and points each copy's backing at the next copy. */
static int keep_chain(const struct sp_disk_chain *c, int sfd, const char *file,
                      struct sp_err *e)
{
  for (size_t k = c->n; k-- > 0;) {
    const struct sp_chain_link *l = &c->links[k];
    _cleanup_free_ char *to = chain_copy_name(file, l, k);
    _cleanup_close_ int out =
      openat(sfd, to, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    char hex[SP_SHA256_HEX_LEN + 1];
    if (out < 0 || lseek(l->fd, 0, SEEK_SET) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", to);
    if (sp_sha256_copy(l->fd, out, hex, e) < 0)
      return sp_err_prefix(e, "copying %s", l->rel);
    if (strcmp(hex, l->sha256) != 0)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s does not match its SHA-256 in SHA256SUMS: the "
                        "point is damaged or was changed", l->rel);
    if (sp_image_check_fd(out, l->rel, l->format, l->backing, NULL, e) < 0)
      return -1;
    if (k + 1 < c->n) {
      _cleanup_free_ char *parent = chain_copy_name(file, &c->links[k + 1], k + 1);
      _cleanup_free_ char *path = sp_xasprintf("/proc/self/fd/3/%s", to);
      /* Relative to the overlay: the chain stays valid if the directory
       * moves.  -u: only the header is written, nothing is opened. */
      char *argv[] = { "qemu-img", "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", parent,
                       path, NULL };
      if (qemu_img(argv, &sfd, 1, e) < 0)
        return -1;
    }
  }
  return 0;
}

/* The chain copied as keep_chain() does (every image read once, hashed as
 * it passes, its copy's header checked), then the overlays committed into
 * the full image's copy, which becomes the disk.  Hashing the chain and
 * then converting it read every image twice: on a 2 GiB full image plus
 * an incremental, a restore took 5.7 s, of which the hash pass ~2
 * (tests/bench/backup).  QEMU still reads nothing that has not been
 * verified: it works on the copies, after their hashes matched. */
static int flatten_by_copy(const struct sp_disk_chain *c, int sfd, const char *file,
                           struct sp_err *e)
{
  if (keep_chain(c, sfd, file, e) < 0)
    return -1;
  if (c->n == 1)
    return 0;
  size_t last = c->n - 1;
  _cleanup_free_ char *base = chain_copy_name(file, &c->links[last], last);
  _cleanup_free_ char *base_path = sp_xasprintf("/proc/self/fd/3/%s", base);
  _cleanup_free_ char *top_path = sp_xasprintf("/proc/self/fd/3/%s", file);
  const char *cache = convert_cache(staging_direct_ok(sfd));
  /* -d: the top is dropped below, there is no point emptying it. */
  char *argv[] = { "qemu-img", "commit", "-q", "-t", (char *)cache, "-f", "qcow2", "-d",
                   "-b", base_path, top_path, NULL };
  if (qemu_img(argv, &sfd, 1, e) < 0)
    return sp_err_prefix(e, "disk %s: committing its incrementals", c->target);
  for (size_t k = 0; k < last; k++) {
    _cleanup_free_ char *name = chain_copy_name(file, &c->links[k], k);
    if (unlinkat(sfd, name, 0) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove the staged %s", name);
  }
  if (renameat(sfd, base, sfd, file) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot rename the staged %s", base);
  return 0;
}

/* What goes into the staging directory: a point's chain (c) or a Ceph
 * snapshot (rbd_source). */
struct disk_source {
  const struct sp_disk_chain *c;
  const char *rbd_source;
};

/* A Ceph snapshot is a whole disk: one read through QEMU's rbd driver,
 * as raw (an RBD image holds the guest's bytes), zeroes left sparse. */
static int convert_rbd(const char *source, int sfd, const char *name, const char *format,
                       struct sp_err *e)
{
  _cleanup_free_ char *out = sp_xasprintf("/proc/self/fd/3/%s", name);
  const char *dst_cache = convert_cache(staging_direct_ok(sfd));
  char *argv[] = { "qemu-img", "convert", "-q", "-t", (char *)dst_cache, "-f", "raw", "-O",
                   (char *)format, (char *)source, out, NULL };
  return qemu_img(argv, &sfd, 1, e);
}

static int write_disk(const struct disk_source *src, int dir_fd, const char *dir,
                      const char *file, const char *format, bool keep,
                      struct restore_made_list *made, struct sp_err *e)
{
  struct stat st;
  if (fstatat(dir_fd, file, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s exists: refusing to overwrite it (restore the "
                      "disks elsewhere with --disks-to DIR)", dir, file);
  const struct sp_disk_chain *c = src->c;
  if (!src->rbd_source && !c)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: the point names no image for it", file);
  char staging[64];
  _cleanup_close_ int sfd = staging_make(dir_fd, staging, e);
  if (sfd < 0)
    return -1;
  size_t before = made->n;
  int rc = src->rbd_source ? convert_rbd(src->rbd_source, sfd, file, format, e)
           : keep          ? keep_chain(c, sfd, file, e)
           : restore_plan_flatten_by_copy(c, format) ? flatten_by_copy(c, sfd, file, e)
                                                      : flatten(c, sfd, file, format, e);
  /* Parents first: an overlay never carries its name before its backing. */
  for (size_t k = keep ? c->n : 1; rc == 0 && k-- > 0;) {
    _cleanup_free_ char *name = c ? chain_copy_name(file, &c->links[k], k) : sp_xstrdup(file);
    rc = put_in_place(sfd, dir_fd, dir, name, made, e);
  }
  if (rc == 0 && fsync(dir_fd) < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", dir);
  if (rc < 0) {
    /* Only this disk's files: earlier disks are the caller's to undo. */
    struct restore_made_list mine = { made->v + before, made->n - before };
    restore_made_undo(&mine);
    made->n = before;
  }
  struct sp_err ignored = { 0 };
  sp_rm_rf_at(dir_fd, staging, &ignored);
  return rc;
}

int restore_disk(const struct sp_disk_chain *c, int dir_fd, const char *dir, const char *file,
                 const char *format, bool keep, struct restore_made_list *made,
                 struct sp_err *e)
{
  const struct disk_source src = { .c = c };
  return write_disk(&src, dir_fd, dir, file, format, keep, made, e);
}

int restore_disk_rbd(const char *source, int dir_fd, const char *dir, const char *file,
                     const char *format, struct restore_made_list *made, struct sp_err *e)
{
  const struct disk_source src = { .rbd_source = source };
  return write_disk(&src, dir_fd, dir, file, format, false, made, e);
}

void restore_made_undo(struct restore_made_list *made)
{
  for (size_t i = made->n; i-- > 0;) {
    sp_unlink_if_same(made->v[i].dir_fd, made->v[i].name, &made->v[i].st);
    fsync(made->v[i].dir_fd);
    close(made->v[i].dir_fd);
    free(made->v[i].name);
  }
  made->n = 0;
}

void restore_made_free(struct restore_made_list *made)
{
  for (size_t i = 0; i < made->n; i++) {
    close(made->v[i].dir_fd);
    free(made->v[i].name);
  }
  free(made->v);
  memset(made, 0, sizeof *made);
}
