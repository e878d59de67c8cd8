#include "restore_disks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "image_check.h"
#include "sha256.h"

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
  struct restore_made *nv = realloc(made->v, (made->n + 1) * sizeof *nv);
  if (!nv)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  made->v = nv;
  nv[made->n] = (struct restore_made){ .dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3),
                                       .name = strdup(name), .st = *st };
  if (nv[made->n].dir_fd < 0 || !nv[made->n].name) {
    if (nv[made->n].dir_fd >= 0)
      close(nv[made->n].dir_fd);
    free(nv[made->n].name);
    return sp_err_sys(e, SP_EXIT_FAILED, errno ? errno : ENOMEM, "restore");
  }
  made->n++;
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

static int flatten(const struct sp_disk_chain *c, int sfd, const char *name, const char *format,
                   struct sp_err *e)
{
  if (sp_chain_check_hashes(c, 0, e) < 0)
    return -1;
  _cleanup_free_ int *lfds = NULL;
  size_t n;
  _cleanup_free_ char *json = sp_chain_json(c, 0, 4, &lfds, &n);
  _cleanup_free_ int *fds = calloc(n + 1, sizeof *fds);
  _cleanup_free_ char *out = NULL;
  if (!json || !fds || asprintf(&out, "/proc/self/fd/3/%s", name) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  fds[0] = sfd;
  memcpy(fds + 1, lfds, n * sizeof *fds);
  char *argv[] = { "qemu-img", "convert", "-q", "-O", (char *)format, json, out, NULL };
  return qemu_img(argv, fds, n + 1, e);
}

/* The i-th image of a kept chain: file, then file.<id> for its parents. */
static char *chain_copy_name(const char *file, const struct sp_chain_link *l, size_t i)
{
  char *p = NULL;
  if (i == 0)
    return strdup(file);
  return asprintf(&p, "%s.%s", file, l->id) < 0 ? NULL : p;
}

/* Copies every image, hashing it as it goes (no second read), checks the
 * copy's header again, and points each copy's backing at the next copy. */
static int keep_chain(const struct sp_disk_chain *c, int sfd, const char *file,
                      struct sp_err *e)
{
  for (size_t k = c->n; k-- > 0;) {
    const struct sp_chain_link *l = &c->links[k];
    _cleanup_free_ char *to = chain_copy_name(file, l, k);
    if (!to)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
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
      _cleanup_free_ char *path = NULL;
      if (!parent || asprintf(&path, "/proc/self/fd/3/%s", to) < 0)
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
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

int restore_disk(const struct sp_disk_chain *c, int dir_fd, const char *dir, const char *file,
                 const char *format, bool keep, struct restore_made_list *made,
                 struct sp_err *e)
{
  struct stat st;
  if (fstatat(dir_fd, file, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s exists: refusing to overwrite it (restore the "
                      "disks elsewhere with --disks-to DIR)", dir, file);
  char staging[64];
  _cleanup_close_ int sfd = staging_make(dir_fd, staging, e);
  if (sfd < 0)
    return -1;
  size_t before = made->n;
  int rc = keep ? keep_chain(c, sfd, file, e) : flatten(c, sfd, file, format, e);
  /* Parents first: an overlay never carries its name before its backing. */
  for (size_t k = keep ? c->n : 1; rc == 0 && k-- > 0;) {
    _cleanup_free_ char *name = chain_copy_name(file, &c->links[k], k);
    rc = name ? put_in_place(sfd, dir_fd, dir, name, made, e)
              : sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
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
