#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "state_files.h"
#include "xalloc.h"

int sp_trust_check_stat(const char *what, const char *path, const struct stat *st, bool last,
                        struct sp_err *e)
{
  return sp_trust_check_stat_also(what, path, st, last, (uid_t)-1, e);
}

int sp_trust_check_stat_also(const char *what, const char *path, const struct stat *st,
                             bool last, uid_t also, struct sp_err *e)
{
  char u[64], g[64];
  unsigned mode = st->st_mode & 07777;
  if (!S_ISDIR(st->st_mode))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: %s is not a directory", what, path);
  if (st->st_uid != 0 && st->st_uid != geteuid() && (also == (uid_t)-1 || st->st_uid != also))
    return sp_err_set(e, SP_EXIT_PREFLIGHT,
                      "%s: %s is owned by %s, not root: that user could replace what stillpoint "
                      "reads or writes below it (a point, or a directory swapped for a symlink); "
                      "fix: chown root %s, or keep points where only root writes",
                      what, path, sp_user_name(st->st_uid, u, sizeof u), path);
  bool sticky_root = st->st_uid == 0 && (st->st_mode & S_ISVTX) && !last;
  if ((st->st_mode & 022) && !sticky_root)
    return sp_err_set(e, SP_EXIT_PREFLIGHT,
                      "%s: %s is writable by %s (owner %s:%s, mode %04o): they could replace "
                      "what stillpoint reads or writes below it (a point, or a directory swapped "
                      "for a symlink); fix: chmod go-w %s",
                      what, path,
                      (st->st_mode & 002) ? "everyone" : "its group",
                      sp_user_name(st->st_uid, u, sizeof u), sp_group_name(st->st_gid, g, sizeof g),
                      mode, path);
  return 0;
}

/* Walks an absolute, resolved path; stops quietly at a missing component
 * when allow_missing.  more_below: what will be used lies below real (a
 * directory still to be made), so real's last component is not the last.
 * Returns the last directory's descriptor (O_PATH). */
static int walk(const char *what, const char *real, bool allow_missing, bool more_below,
                uid_t also, struct sp_err *e)
{
  _cleanup_close_ int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open /");
  bool only_root = strcmp(real, "/") == 0 && !more_below;
  if (sp_trust_check_stat_also(what, "/", &st, only_root, also, e) < 0)
    return -1;
  char walked[PATH_MAX] = "";
  const char *p = real;
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p)
      break;
    size_t n = strcspn(p, "/");
    char name[NAME_MAX + 1];
    if (n > NAME_MAX)
      return sp_err_set(e, SP_EXIT_FAILED, "%s: a component of %s is too long", what, real);
    memcpy(name, p, n);
    name[n] = '\0';
    p += n;
    const char *rest = p + strspn(p, "/");
    size_t wl = strlen(walked);
    snprintf(walked + wl, sizeof walked - wl, "/%s", name);
    int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      if (errno == ENOENT && allow_missing)
        break;
      if (errno == ELOOP || errno == ENOTDIR)
        return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: %s is not a directory (or became a symlink "
                          "while it was checked)", what, walked);
      return sp_err_sys(e, errno == ENOENT ? SP_EXIT_PREFLIGHT : SP_EXIT_FAILED, errno,
                        "%s: cannot open %s", what, walked);
    }
    close(fd);
    fd = next;
    if (fstat(fd, &st) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s: cannot examine %s", what, walked);
    if (sp_trust_check_stat_also(what, walked, &st, !*rest && !more_below, also, e) < 0)
      return -1;
  }
  return steal_fd(&fd);
}

int sp_trusted_dir_open(const char *what, const char *path, struct sp_err *e)
{
  return sp_trusted_dir_open_also(what, path, (uid_t)-1, e);
}

int sp_trusted_dir_open_also(const char *what, const char *path, uid_t also, struct sp_err *e)
{
  char real[PATH_MAX];
  if (!realpath(path, real))
    return sp_err_sys(e, errno == ENOENT ? SP_EXIT_PREFLIGHT : SP_EXIT_FAILED, errno, "%s %s",
                      what, path);
  _cleanup_close_ int fd = walk(what, real, false, false, also, e);
  if (fd < 0)
    return -1;
  /* O_PATH cannot list or be a base for *at writes on every kernel:
   * the directory itself, opened through the checked descriptor. */
  int rd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s: cannot open %s", what, real);
  return rd;
}

int sp_trusted_path_check(const char *what, const char *path, struct sp_err *e)
{
  /* The longest prefix that exists, resolved. */
  _cleanup_free_ char *copy = sp_xstrdup(path);
  char real[PATH_MAX];
  bool missing = false;
  while (!realpath(copy, real)) {
    missing = true;
    char *slash = strrchr(copy, '/');
    if (errno != ENOENT || !slash || slash == copy) {
      if (errno == ENOENT && slash == copy)
        snprintf(real, sizeof real, "/");
      else
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s %s", what, path);
      break;
    }
    *slash = '\0';
  }
  _cleanup_close_ int fd = walk(what, real, true, missing, (uid_t)-1, e);
  return fd < 0 ? -1 : 0;
}
