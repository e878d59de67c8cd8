#include "point_chain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "image_check.h"
#include "sha256.h"
#include "trust.h"
#include "xalloc.h"

enum { MAX_DEPTH = 1000 };

int sp_point_open(const char *path, struct sp_point *p, struct sp_err *e)
{
  memset(p, 0, sizeof *p);
  p->domain_fd = p->fd = -1;
  if (!realpath(path, p->path))
    return sp_err_sys(e, errno == ENOENT ? SP_EXIT_PREFLIGHT : SP_EXIT_FAILED, errno, "point %s",
                      path);
  char copy[PATH_MAX], copy2[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", p->path);
  snprintf(copy2, sizeof copy2, "%s", p->path);
  snprintf(p->name, sizeof p->name, "%s", basename(copy));
  if (!sp_name_ok(p->name))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not a point directory", p->path);
  if ((p->domain_fd = sp_trusted_dir_open("point", dirname(copy2), e)) < 0)
    return -1;
  p->fd = openat(p->domain_fd, p->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (p->fd < 0 || fstat(p->fd, &st) < 0)
    return sp_err_sys(e, errno == ENOTDIR || errno == ELOOP ? SP_EXIT_PREFLIGHT : SP_EXIT_FAILED,
                      errno, "%s is not a point directory", p->path);
  return sp_trust_check_stat("point", p->path, &st, true, e);
}

void sp_point_close(struct sp_point *p)
{
  if (p->fd >= 0)
    close(p->fd);
  if (p->domain_fd >= 0)
    close(p->domain_fd);
  p->fd = p->domain_fd = -1;
}

/* Depth-first through descriptors: names the first entry that is not a
 * regular file with one link or a directory. */
static int scan_dir(int dfd, const char *path, int depth, struct sp_err *e)
{
  if (depth > 8)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: nested too deep for a point", path);
  int fd = dup(dfd);
  _cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", path);
  }
  rewinddir(d);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    _cleanup_free_ char *p = sp_path_join(path, de->d_name);
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", p);
    if (S_ISDIR(st.st_mode)) {
      _cleanup_close_ int sub =
        openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0)
        return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "cannot open %s", p);
      if (scan_dir(sub, p, depth + 1, e) < 0)
        return -1;
    } else if (!S_ISREG(st.st_mode)) {
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is %s: refusing a point that could lead "
                        "outside itself", p,
                        S_ISLNK(st.st_mode) ? "a symlink" : S_ISFIFO(st.st_mode) ? "a FIFO"
                                                                               : "a special file");
    } else if (st.st_nlink != 1) {
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s has %ju links: a hard link may be a file "
                        "outside the point; refusing it", p, (uintmax_t)st.st_nlink);
    }
  }
  return 0;
}

int sp_point_scan(int point_fd, const char *path, struct sp_err *e)
{
  return scan_dir(point_fd, path, 0, e);
}

static int add_link(struct sp_disk_chain *c, const char *id, const char *file,
                    enum sp_level level, struct sp_err *e)
{
  c->links = sp_xreallocarray(c->links, c->n + 1, sizeof *c->links);
  struct sp_chain_link *l = &c->links[c->n++];
  memset(l, 0, sizeof *l);
  l->fd = -1;
  l->id = sp_xstrdup(id);
  l->level = level;
  l->rel = sp_xasprintf("%s/%s", id, file);
  return 0;
}

/* One step: the image of disk d in the point open as pfd, checked. */
static int check_link(struct sp_disk_chain *c, int pfd, const struct sp_manifest *m,
                      const struct sp_sums *sums, const struct sp_manifest_disk *d,
                      struct sp_err *e)
{
  if (add_link(c, m->id, d->file, d->level, e) < 0)
    return -1;
  struct sp_chain_link *l = &c->links[c->n - 1];
  l->format = strcmp(d->image_format, "raw") == 0 ? "raw" : "qcow2";
  if (d->parent_file)
    l->backing = sp_xstrdup(d->parent_file);
  const char *sha = sp_sums_find(sums, d->file);
  if (!sha)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: not listed in SHA256SUMS of point %s", l->rel,
                      m->id);
  memcpy(l->sha256, sha, sizeof l->sha256);
  struct stat st;
  if (fstatat(pfd, d->file, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: missing", l->rel);
  if ((l->fd = sp_open_regular_at(pfd, d->file, &st, e)) < 0)
    return sp_err_prefix(e, "point %s", m->id);
  return sp_image_check_fd(l->fd, l->rel, l->format, d->parent_file, &l->vsize, e);
}

int sp_disk_chain_resolve(int domain_fd, int point_fd, const struct sp_manifest *m,
                          const struct sp_sums *sums, const char *target,
                          struct sp_disk_chain *c, struct sp_err *e)
{
  memset(c, 0, sizeof *c);
  c->target = sp_xstrdup(target);
  struct sp_manifest cur = { 0 };
  struct sp_sums cur_sums = { 0 };
  const struct sp_manifest *mp = m;
  const struct sp_sums *sp = sums;
  _cleanup_close_ int owned = -1;
  int pfd = point_fd;
  int rc = 0;
  for (int depth = 0; rc == 0; depth++) {
    const struct sp_manifest_disk *d = sp_manifest_disk(mp, target);
    if (depth >= MAX_DEPTH) {
      rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: chain longer than %d points", target,
                      MAX_DEPTH);
      break;
    }
    if (!d) {
      rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "point %s has no disk %s", mp->id, target);
      break;
    }
    if (strcmp(mp->uuid, m->uuid) != 0) {
      rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "point %s belongs to another domain (%s)", mp->id,
                      mp->uuid);
      break;
    }
    if ((rc = check_link(c, pfd, mp, sp, d, e)) < 0 || !d->parent_file)
      break;
    /* "../../<id>/disks/<file>" (checked by the manifest parser) */
    const char *id = d->parent_file + 6;
    char parent_id[SP_POINT_ID_MAX];
    snprintf(parent_id, sizeof parent_id, "%.*s", (int)strcspn(id, "/"), id);
    struct sp_err oe = { 0 };
    int next = sp_open_beneath(domain_fd, parent_id, O_RDONLY | O_DIRECTORY, 0, &oe);
    if (next < 0) {
      rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: parent point %s of %s is missing (%s)",
                      target, parent_id, mp->id, oe.msg);
      break;
    }
    struct sp_manifest pm;
    struct sp_sums ps;
    if ((rc = sp_manifest_load_at(next, parent_id, &pm, e)) < 0) {
      close(next);
      break;
    }
    if (strcmp(pm.id, parent_id) != 0 || sp_sums_load_at(next, &ps, e) < 0) {
      rc = strcmp(pm.id, parent_id) != 0
             ? sp_err_set(e, SP_EXIT_PREFLIGHT, "point %s: its manifest names point %s",
                          parent_id, pm.id)
             : sp_err_prefix(e, "point %s", parent_id);
      rc = -1;
      sp_manifest_free(&pm);
      close(next);
      break;
    }
    sp_manifest_free(&cur);
    sp_sums_free(&cur_sums);
    cur = pm;
    cur_sums = ps;
    mp = &cur;
    sp = &cur_sums;
    if (owned >= 0)
      close(owned);
    owned = pfd = next;
  }
  sp_manifest_free(&cur);
  sp_sums_free(&cur_sums);
  if (rc == 0 && c->links[c->n - 1].level != SP_LEVEL_FULL)
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: its chain ends at %s, which is not a full "
                    "image", target, c->links[c->n - 1].rel);
  return rc;
}

void sp_disk_chain_free(struct sp_disk_chain *c)
{
  for (size_t i = 0; i < c->n; i++) {
    free(c->links[i].id);
    free(c->links[i].rel);
    free(c->links[i].backing);
    if (c->links[i].fd >= 0)
      close(c->links[i].fd);
  }
  free(c->links);
  free(c->target);
  memset(c, 0, sizeof *c);
}

int sp_chain_check_hashes(const struct sp_disk_chain *c, size_t from, struct sp_err *e)
{
  for (size_t i = from; i < c->n; i++) {
    const struct sp_chain_link *l = &c->links[i];
    char hex[SP_SHA256_HEX_LEN + 1];
    if (lseek(l->fd, 0, SEEK_SET) < 0 || sp_sha256_fd(l->fd, hex, e) < 0)
      return sp_err_prefix(e, "%s", l->rel);
    if (strcmp(hex, l->sha256) != 0)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s does not match its SHA-256 in SHA256SUMS: the "
                        "point is damaged or was changed (stillpoint verify names what else is)",
                        l->rel);
  }
  return 0;
}

char *sp_chain_json(const struct sp_disk_chain *c, size_t from, int first_child_fd, int **fds,
                    size_t *nfds)
{
  *fds = NULL;
  *nfds = 0;
  if (from >= c->n)
    return NULL;
  size_t n = c->n - from;
  _cleanup_free_ struct sp_image_layer *layers = sp_xcalloc(n, sizeof *layers);
  _cleanup_free_ int *v = sp_xcalloc(n, sizeof *v);
  for (size_t i = 0; i < n; i++) {
    layers[i] = (struct sp_image_layer){ c->links[from + i].format, first_child_fd + (int)i };
    v[i] = c->links[from + i].fd;
  }
  char *json = sp_image_json(layers, n);
  if (json) {
    *fds = steal_pointer(&v);
    *nfds = n;
  }
  return json;
}
