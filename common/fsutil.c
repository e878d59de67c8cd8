#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

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
  _cleanup_free_ char *b = malloc(cap + 1);
  if (!b)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", path);
  size_t n = 0;
  for (;;) {
    if (n == cap) {
      if (cap > max) {
        errno = EFBIG;
        return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than %zu bytes", path, max);
      }
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *nb = realloc(b, ncap + 1);
      if (!nb)
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", path);
      b = nb;
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

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int sp_rm_rf(const char *path, struct sp_err *e)
{
  if (!sp_exists(path))
    return 0;
  if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove %s", path);
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

char *sp_path_join(const char *a, const char *b)
{
  char *r = NULL;
  size_t la = strlen(a);
  bool slash = la > 0 && a[la - 1] == '/';
  if (asprintf(&r, "%s%s%s", a, slash ? "" : "/", b) < 0)
    return NULL;
  return r;
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
