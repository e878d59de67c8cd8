#include "point_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "own_dirs.h"
#include "phases.h"
#include "sha256.h"
#include "trust.h"
#include "xalloc.h"

int point_create(struct point_dir *pd, const char *domain_dir, const char *id, struct sp_err *e)
{
  memset(pd, 0, sizeof *pd);
  pd->fd = pd->domain_fd = -1;
  pd->domain_dir = sp_xstrdup(domain_dir);
  pd->id = sp_xstrdup(id);
  pd->partial_name = sp_xasprintf("%s%s", id, SP_PARTIAL_SUFFIX);
  pd->partial = sp_xasprintf("%s/%s%s", domain_dir, id, SP_PARTIAL_SUFFIX);
  pd->final = sp_xasprintf("%s/%s", domain_dir, id);
  if (sp_dirs_prepare_local(domain_dir, 0700, e) < 0)
    return -1;
  /* Held from here on: the point is made and renamed below this
   * descriptor, whatever happens to the path (trust.h). */
  if ((pd->domain_fd = sp_trusted_dir_open("target", domain_dir, e)) < 0)
    return -1;
  struct stat st;
  if (fstatat(pd->domain_fd, id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
      fstatat(pd->domain_fd, pd->partial_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return sp_err_set(e, SP_EXIT_FAILED, "point %s exists already", pd->final);
  /* Held until the rename: prune (of any host or URI) leaves this
   * .partial alone while we write it. */
  int got = sp_point_lock_at(pd->domain_fd, id, true, &pd->lock_fd, e);
  if (got < 0)
    return -1;
  if (got == 0)
    return sp_err_set(e, SP_EXIT_FAILED, "point %s is being written by another run", pd->final);
  pd->locked = true;
  if (mkdirat(pd->domain_fd, pd->partial_name, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", pd->partial);
  pd->fd = openat(pd->domain_fd, pd->partial_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (pd->fd < 0 || fchmod(pd->fd, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", pd->partial);
  return point_mkdir(pd, SP_POINT_DISKS_DIR, e);
}

int point_mkdir(struct point_dir *pd, const char *rel, struct sp_err *e)
{
  if (!sp_relpath_ok(rel))
    return sp_err_set(e, SP_EXIT_FAILED, "bad point subdirectory '%s'", rel);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", rel);
  for (char *p = buf;; p++) {
    if (*p == '/' || !*p) {
      char c = *p;
      *p = '\0';
      if (mkdirat(pd->fd, buf, 0700) < 0 && errno != EEXIST)
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s/%s", pd->partial, buf);
      /* 0700 whatever the umask (mkdirat's mode is filtered by it). */
      _cleanup_close_ int dfd = sp_open_beneath(pd->fd, buf, O_RDONLY | O_DIRECTORY, 0, e);
      if (dfd < 0 || fchmod(dfd, 0700) < 0)
        return dfd < 0 ? -1 : sp_err_sys(e, SP_EXIT_FAILED, errno, "%s/%s", pd->partial, buf);
      *p = c;
      if (!c)
        break;
    }
  }
  return 0;
}

/* Opens the directory part of rel inside the point (no symlinks). */
static int open_parent(struct point_dir *pd, const char *rel, const char **base,
                       struct sp_err *e)
{
  const char *slash = strrchr(rel, '/');
  *base = slash ? slash + 1 : rel;
  if (!slash)
    return fcntl(pd->fd, F_DUPFD_CLOEXEC, 3);
  _cleanup_free_ char *dir = sp_xstrndup(rel, (size_t)(slash - rel));
  return sp_open_beneath(pd->fd, dir, O_RDONLY | O_DIRECTORY, 0, e);
}

int point_put(struct point_dir *pd, const char *rel, const void *data, size_t len, mode_t mode,
              struct sp_err *e)
{
  const char *base;
  _cleanup_close_ int dfd = open_parent(pd, rel, &base, e);
  char sha[SP_SHA256_HEX_LEN + 1];
  if (dfd < 0 || sp_write_file_at(dfd, base, data, len, mode, e) < 0)
    return -1;
  sp_sha256_hex(data, len, sha);
  sp_sums_add(&pd->sums, rel, sha);
  return 0;
}

int point_put_blob(struct point_dir *pd, const char *reldir, const struct sp_blob *b,
                   struct sp_err *e)
{
  _cleanup_free_ char *rel = sp_xasprintf("%s/%s", reldir, b->name);
  /* Kept 0600 in the point whatever the source mode: restore sets the
   * mode libvirt expects, recorded in the manifest. */
  return point_put(pd, rel, b->data, b->len, 0600, e);
}

int point_put_tree(struct point_dir *pd, const char *reldir, const struct sp_tree *t,
                   struct sp_err *e)
{
  if (point_mkdir(pd, reldir, e) < 0)
    return -1;
  for (size_t i = 0; i < t->n; i++)
    if (point_put_blob(pd, reldir, &t->files[i], e) < 0)
      return -1;
  return 0;
}

int point_add_fd(struct point_dir *pd, const char *rel, int fd, const char *sha,
                 double *fsync_ms, double *hash_ms, struct sp_err *e)
{
  char hashed[SP_SHA256_HEX_LEN + 1];
  double t0 = phases_now();
  if (fsync(fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", rel);
  double t1 = phases_now();
  *fsync_ms += t1 - t0;
  if (!sha) {
    if (sp_sha256_fd(fd, hashed, e) < 0)
      return sp_err_prefix(e, "%s", rel);
    sha = hashed;
  }
  *hash_ms += phases_now() - t1;
  sp_sums_add(&pd->sums, rel, sha);
  return 0;
}

/* fsync of every directory of the point, deepest first is not needed:
 * each directory's entries are made durable by its own fsync. */
static int fsync_dirs(struct point_dir *pd, struct sp_err *e)
{
  static const char *const subs[] = { SP_POINT_DISKS_DIR, "nvram", "tpm", "tpm/tpm2", "tpm/tpm1.2" };
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    struct sp_err ignored = { 0 };
    _cleanup_close_ int fd = sp_open_beneath(pd->fd, subs[i], O_RDONLY | O_DIRECTORY, 0,
                                             &ignored);
    if (fd >= 0 && fsync(fd) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s/%s", pd->partial, subs[i]);
  }
  if (fsync(pd->fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", pd->partial);
  return 0;
}

int point_finish(struct point_dir *pd, struct phases_tail *t, struct sp_err *e)
{
  double t0 = phases_now();
  if (sp_sums_write(pd->fd, &pd->sums, e) < 0)
    return -1;
  double t1 = phases_now();
  if (fsync_dirs(pd, e) < 0)
    return -1;
  double t2 = phases_now();
  t->sums_ms = t1 - t0;
  t->dirs_ms = t2 - t1;
  /* Below the held directory, never over anything already named so. */
  if (renameat2(pd->domain_fd, pd->partial_name, pd->domain_fd, pd->id, RENAME_NOREPLACE) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot rename %s to %s", pd->partial,
                      pd->final);
  if (fsync(pd->domain_fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync directory %s", pd->domain_dir);
  t->rename_ms = phases_now() - t2;
  return 0;
}

void point_dir_free(struct point_dir *pd)
{
  /* Renamed, or left as a failed .partial: no writer from here on. */
  if (pd->locked)
    sp_point_unlock_at(pd->domain_fd, pd->id, pd->lock_fd);
  if (pd->fd >= 0)
    close(pd->fd);
  if (pd->domain_fd >= 0)
    close(pd->domain_fd);
  sp_sums_free(&pd->sums);
  free(pd->domain_dir);
  free(pd->id);
  free(pd->partial_name);
  free(pd->partial);
  free(pd->final);
  memset(pd, 0, sizeof *pd);
  pd->fd = pd->domain_fd = -1;
}

char *point_path(const struct point_dir *pd, const char *rel)
{
  return sp_path_join(pd->partial, rel);
}
