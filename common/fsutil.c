#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "xalloc.h"

int sp_read_file(const char *path, size_t max, char **buf, size_t *len, struct sp_err *e)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot stat %s", path);
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return sp_err_set(e, SP_EXIT_FAILED, "%s is a directory", path);
  }
  size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
  if (cap > max + 1)
    cap = max + 1;
  _cleanup_free_ char *b = sp_xmalloc(cap + 1);
  size_t n = 0;
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        errno = EFBIG;
        return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than %zu bytes", path, max);
      }
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      b = sp_xrealloc(b, ncap + 1);
      cap = ncap;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", path);
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max) {
    errno = EFBIG;
    return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than %zu bytes", path, max);
  }
  b[n] = '\0';
  *len = n;
  *buf = steal_pointer(&b);
  return 0;
}

int sp_open_regular_at(int dirfd, const char *rel, struct stat *st, struct sp_err *e)
{
  _cleanup_close_ int fd = sp_open_beneath(dirfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, e);
  if (fd < 0)
    return -1;
  if (fstat(fd, st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", rel);
  if (!S_ISREG(st->st_mode))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is %s, not a regular file: refusing it", rel,
                      S_ISFIFO(st->st_mode)  ? "a FIFO"
                      : S_ISDIR(st->st_mode) ? "a directory"
                      : S_ISSOCK(st->st_mode) ? "a socket"
                                              : "a device");
  if (st->st_nlink != 1)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s has %ju links: a hard link may be a file outside "
                      "the point; refusing it", rel, (uintmax_t)st->st_nlink);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", rel);
  return steal_fd(&fd);
}

int sp_read_file_at(int dirfd, const char *rel, size_t max, char **buf, size_t *len,
                    struct sp_err *e)
{
  struct stat st;
  _cleanup_close_ int fd = sp_open_regular_at(dirfd, rel, &st, e);
  if (fd < 0)
    return -1;
  if ((uintmax_t)st.st_size > max)
    return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than %zu bytes: refusing it", rel, max);
  size_t cap = (size_t)st.st_size + 1;
  _cleanup_free_ char *b = sp_xmalloc(cap + 1);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", rel);
    if (r == 0)
      break;
    n += (size_t)r;
    if (n == cap) /* it grew while read: more than it said */
      return sp_err_set(e, SP_EXIT_FAILED, "%s changed while it was read", rel);
  }
  b[n] = '\0';
  *len = n;
  *buf = steal_pointer(&b);
  return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int sp_write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                     struct sp_err *e)
{
  char tmp[NAME_MAX + 1];
  if (!sp_name_ok(name) || snprintf(tmp, sizeof tmp, ".%s.tmp", name) >= (int)sizeof tmp)
    return sp_err_set(e, SP_EXIT_FAILED, "refusing to write file named '%s'", name);
  unlinkat(dirfd, tmp, 0);
  _cleanup_close_ int fd =
    openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", tmp);
  if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int err = errno;
    unlinkat(dirfd, tmp, 0);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot write %s", name);
  }
  if (renameat(dirfd, tmp, dirfd, name) < 0) {
    int err = errno;
    unlinkat(dirfd, tmp, 0);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot rename %s to %s", tmp, name);
  }
  return 0;
}

int sp_create_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                      uid_t uid, gid_t gid, struct stat *created, struct sp_err *e)
{
  char tmp[NAME_MAX + 1];
  if (!sp_name_ok(name) || snprintf(tmp, sizeof tmp, ".%s.stillpoint-new", name) >= (int)sizeof tmp)
    return sp_err_set(e, SP_EXIT_FAILED, "refusing to create a file named '%s'", name);
  unlinkat(dirfd, tmp, 0);
  _cleanup_close_ int fd =
    openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", tmp);
  struct stat st;
  if (fchmod(fd, mode) < 0 || (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) ||
      write_all(fd, data, len) < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0) {
    int err = errno;
    unlinkat(dirfd, tmp, 0);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot write %s", name);
  }
  if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) < 0) {
    int err = errno;
    unlinkat(dirfd, tmp, 0);
    errno = err;
    return err == EEXIST ? sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists: not replacing it", name)
                         : sp_err_sys(e, SP_EXIT_FAILED, err, "cannot create %s", name);
  }
  if (created)
    *created = st;
  return 0;
}

int sp_unlink_if_same(int dirfd, const char *name, const struct stat *was)
{
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != was->st_dev ||
      st.st_ino != was->st_ino)
    return -1;
  return unlinkat(dirfd, name, 0);
}

int sp_fsync_dir(const char *path, struct sp_err *e)
{
  _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync directory %s", path);
  return 0;
}

int sp_mkdir_p(const char *path, mode_t mode, struct sp_err *e)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return sp_err_set(e, SP_EXIT_FAILED, "path too long: %s", path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, mode) == 0) {
        if (chmod(buf, mode) < 0)
          return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot set the mode of %s", buf);
      } else if (errno != EEXIST) {
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create directory %s", buf);
      }
      *p = c;
      if (!c)
        break;
    }
  }
  if (!sp_is_dir(path))
    return sp_err_set(e, SP_EXIT_FAILED, "%s exists and is not a directory", path);
  return 0;
}

int sp_dir_ensure(const char *path, mode_t mode, uid_t uid, gid_t gid, struct sp_err *e)
{
  if (mkdir(path, mode) < 0 && errno != EEXIST)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create directory %s", path);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
    return sp_err_set(e, SP_EXIT_FAILED, "%s exists and is not a directory (a symlink or a "
                      "file): remove it, stillpoint makes the directory itself", path);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open directory %s", path);
  if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot give %s to %u:%u", path, (unsigned)uid,
                      (unsigned)gid);
  if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot set mode %04o on %s", (unsigned)mode,
                      path);
  return 0;
}

bool sp_relpath_ok(const char *rel)
{
  if (!rel || !*rel || rel[0] == '/')
    return false;
  const char *p = rel;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    if (!slash)
      break;
    p = slash + 1;
    if (!*p)
      return false; /* trailing slash */
  }
  return true;
}

bool sp_name_ok(const char *name)
{
  return sp_relpath_ok(name) && !strchr(name, '/');
}

bool sp_abspath_ok(const char *path)
{
  return path && path[0] == '/' && sp_relpath_ok(path + 1);
}

int sp_open_beneath(int basefd, const char *rel, int flags, mode_t mode, struct sp_err *e)
{
  if (!sp_relpath_ok(rel))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "refusing path '%s': it would leave its directory",
                      rel);
  struct open_how how = {
    .flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW),
    .mode = (flags & O_CREAT) ? mode : 0,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  long fd = syscall(SYS_openat2, basefd, rel, &how, sizeof how);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP || err == EXDEV)
      return sp_err_set(e, SP_EXIT_PREFLIGHT,
                        "refusing path '%s': a symlink or '..' on the way would leave its "
                        "directory", rel);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot open %s", rel);
  }
  return (int)fd;
}

/* One entry below dirfd; dev is the file system the removal started on. */
static int rm_at(int at, const char *name, dev_t dev, int depth, struct sp_err *e)
{
  struct stat st;
  if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", name);
  if (!S_ISDIR(st.st_mode))
    return unlinkat(at, name, 0) < 0 && errno != ENOENT
             ? sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove %s", name)
             : 0;
  if (st.st_dev != dev)
    return sp_err_set(e, SP_EXIT_FAILED, "%s is a mount point: not removing what is mounted "
                      "there", name);
  if (depth > 64)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: nested too deep to remove", name);
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat now;
  if (fd < 0 || fstat(fd, &now) < 0) {
    int err = errno;
    if (fd >= 0)
      close(fd);
    /* Replaced by a symlink or a file since the fstatat: remove that. */
    if (err == ELOOP || err == ENOTDIR)
      return rm_at(at, name, dev, depth + 1, e);
    return err == ENOENT ? 0 : sp_err_sys(e, SP_EXIT_FAILED, err, "cannot open %s", name);
  }
  _cleanup_closedir_ DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", name);
  }
  if (now.st_dev != dev)
    return sp_err_set(e, SP_EXIT_FAILED, "%s is a mount point: not removing what is mounted "
                      "there", name);
  struct dirent *de;
  while ((errno = 0, de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (rm_at(dirfd(d), de->d_name, dev, depth + 1, e) < 0)
      return sp_err_prefix(e, "%s", name);
  }
  if (errno)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", name);
  if (unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove %s", name);
  return 0;
}

int sp_rm_rf_at(int dirfd, const char *name, struct sp_err *e)
{
  struct stat st;
  if (!sp_name_ok(name))
    return sp_err_set(e, SP_EXIT_FAILED, "refusing to remove '%s'", name);
  if (fstat(dirfd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine the directory of %s", name);
  struct stat target;
  if (fstatat(dirfd, name, &target, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", name);
  return rm_at(dirfd, name, target.st_dev, 0, e);
}

int sp_rm_rf(const char *path, struct sp_err *e)
{
  if (!sp_exists(path))
    return 0;
  _cleanup_free_ char *copy = sp_xstrdup(path);
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/')
    copy[--n] = '\0';
  char *slash = strrchr(copy, '/');
  const char *name = slash ? slash + 1 : copy;
  const char *parent = !slash ? "." : slash == copy ? "/" : copy;
  if (slash && slash != copy)
    *slash = '\0';
  _cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", parent);
  if (sp_rm_rf_at(pfd, name, e) < 0)
    return sp_err_prefix(e, "cannot remove %s", path);
  return 0;
}

bool sp_is_dir(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool sp_exists(const char *path)
{
  struct stat st;
  return lstat(path, &st) == 0;
}

bool sp_direct_io_ok(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return false;
  if (fl & O_DIRECT)
    return true;
  if (fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
    return false;
  fcntl(fd, F_SETFL, fl);
  return true;
}

bool sp_direct_io_all(const int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!sp_direct_io_ok(fds[i]))
      return false;
  return true;
}

char *sp_path_join(const char *a, const char *b)
{
  size_t la = strlen(a);
  bool slash = la > 0 && a[la - 1] == '/';
  return sp_xasprintf("%s%s%s", a, slash ? "" : "/", b);
}

int sp_copy_file(const char *src, const char *dst, mode_t mode, struct sp_err *e)
{
  _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", src);
  _cleanup_close_ int out =
    open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (out < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", dst);
  char buf[65536];
  for (;;) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", src);
    if (r == 0)
      break;
    if (write_all(out, buf, (size_t)r) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot write %s", dst);
  }
  if (fchmod(out, mode) < 0 || fsync(out) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot finish %s", dst);
  return 0;
}
