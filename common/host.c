#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

/* ---- this machine -------------------------------------------------------- */

static int local_file_info(struct sp_host *h, const char *path, struct sp_file_info *fi,
                           struct sp_err *e)
{
  (void)h;
  return sp_file_info(path, fi, e);
}

static int local_list_dir(struct sp_host *h, const char *dir, struct sp_strv *names,
                          struct sp_err *e)
{
  (void)h;
  _cleanup_closedir_ DIR *d = opendir(dir);
  if (!d)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", dir);
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      sp_strv_push(names, de->d_name);
  return 0;
}

static int local_read_blob(struct sp_host *h, const char *path, struct sp_blob *b,
                           struct sp_err *e)
{
  (void)h;
  return sp_blob_read(path, b, e);
}

static int local_read_tree(struct sp_host *h, const char *dir, struct sp_tree *t, bool *temp,
                           struct sp_err *e)
{
  (void)h;
  return sp_tree_read(dir, t, temp, e);
}

static int local_read_text(struct sp_host *h, const char *path, size_t max, char **buf,
                           size_t *len, struct sp_err *e)
{
  (void)h;
  return sp_read_file(path, max, buf, len, e);
}

static int local_ids(struct sp_host *h, const char *user, const char *group, uid_t *uid,
                     gid_t *gid, struct sp_err *e)
{
  (void)h;
  char buf[4096];
  char *end;
  if (user[0] == '+') {
    *uid = (uid_t)strtoul(user + 1, &end, 10);
  } else {
    struct passwd pw, *r = NULL;
    if (getpwnam_r(user, &pw, buf, sizeof buf, &r) != 0 || !r)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "user '%s' does not exist here", user);
    *uid = r->pw_uid;
  }
  if (group[0] == '+') {
    *gid = (gid_t)strtoul(group + 1, &end, 10);
  } else {
    struct group gr, *r = NULL;
    if (getgrnam_r(group, &gr, buf, sizeof buf, &r) != 0 || !r)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "group '%s' does not exist here", group);
    *gid = r->gr_gid;
  }
  return 0;
}

static int local_mkdir_owned(struct sp_host *h, const char *path, mode_t mode, uid_t uid,
                             gid_t gid, struct sp_err *e)
{
  (void)h;
  if (mkdir(path, mode) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", path);
  if (chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
    return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "cannot give %s to %u:%u (run as root)", path,
                      (unsigned)uid, (unsigned)gid);
  return 0;
}

static int local_ensure_dir(struct sp_host *h, const char *path, mode_t mode, uid_t uid,
                            gid_t gid, struct sp_err *e)
{
  (void)h;
  return sp_dir_ensure(path, mode, uid, gid, e);
}

static int local_rm_rf(struct sp_host *h, const char *path, struct sp_err *e)
{
  (void)h;
  return sp_rm_rf(path, e);
}

static int local_write_file(struct sp_host *h, const char *path, const void *data, size_t len,
                            mode_t mode, uid_t uid, gid_t gid, struct sp_err *e)
{
  (void)h;
  _cleanup_free_ char *copy = strdup(path);
  char *slash = copy ? strrchr(copy, '/') : NULL;
  if (!slash)
    return sp_err_set(e, SP_EXIT_FAILED, "not an absolute path: %s", path);
  *slash = '\0';
  _cleanup_close_ int dfd = open(copy[0] ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", copy);
  if (sp_write_file_at(dfd, slash + 1, data, len, mode, e) < 0)
    return -1;
  if (fchownat(dfd, slash + 1, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot set the owner of %s", path);
  if (fsync(dfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", copy);
  return 0;
}

static int local_upload(struct sp_host *h, const char *local, const char *path,
                        struct sp_err *e)
{
  (void)h;
  return sp_copy_file(local, path, 0600, e);
}

/* The parent of path, opened; *base points into path. */
static int open_parent(const char *path, const char **base, struct sp_err *e)
{
  const char *slash = strrchr(path, '/');
  if (!slash || !slash[1])
    return sp_err_set(e, SP_EXIT_FAILED, "not an absolute file path: %s", path);
  *base = slash + 1;
  _cleanup_free_ char *dir = sp_xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", dir) : fd;
}

static int local_create_file(struct sp_host *h, const char *path, const void *data, size_t len,
                             mode_t mode, uid_t uid, gid_t gid, struct sp_err *e)
{
  (void)h;
  const char *base;
  _cleanup_close_ int dfd = open_parent(path, &base, e);
  if (dfd < 0 || sp_create_file_at(dfd, base, data, len, mode, uid, gid, NULL, e) < 0)
    return dfd < 0 ? -1 : sp_err_prefix(e, "%s", path);
  return fsync(dfd) < 0 ? sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", path) : 0;
}

static int local_rename(struct sp_host *h, const char *from, const char *to, struct sp_err *e)
{
  (void)h;
  const char *fb, *tb;
  _cleanup_close_ int dfd = open_parent(from, &fb, e);
  if (dfd < 0)
    return -1;
  if (strncmp(from, to, (size_t)(fb - from)) != 0 || !(tb = to + (fb - from)) || strchr(tb, '/'))
    return sp_err_set(e, SP_EXIT_FAILED, "%s and %s are not in one directory", from, to);
  if (renameat2(dfd, fb, dfd, tb, RENAME_NOREPLACE) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot rename %s to %s", from, to);
  return fsync(dfd) < 0 ? sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync") : 0;
}

static bool local_exists(struct sp_host *h, const char *path)
{
  (void)h;
  return sp_exists(path);
}

static void local_close(struct sp_host *h)
{
  (void)h;
}

static const struct sp_host_ops local_ops = {
  .file_info = local_file_info,
  .list_dir = local_list_dir,
  .read_blob = local_read_blob,
  .read_tree = local_read_tree,
  .read_text = local_read_text,
  .ids = local_ids,
  .mkdir_owned = local_mkdir_owned,
  .ensure_dir = local_ensure_dir,
  .rm_rf = local_rm_rf,
  .write_file = local_write_file,
  .upload = local_upload,
  .create_file = local_create_file,
  .rename = local_rename,
  .exists = local_exists,
  .close = local_close,
};

void sp_host_local(struct sp_host *h)
{
  memset(h, 0, sizeof *h);
  h->ops = &local_ops;
  snprintf(h->name, sizeof h->name, "localhost");
}

void sp_host_close(struct sp_host *h)
{
  if (h->ops)
    h->ops->close(h);
  h->ops = NULL;
}
