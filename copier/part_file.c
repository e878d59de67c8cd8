#include "part_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

int part_preflight(const char *output, struct sp_err *e)
{
  struct stat st;
  size_t n = strlen(output);
  if (n == 0 || output[n - 1] == '/')
    return sp_err_set(e, SP_EXIT_USAGE, "output %s: not a file name", output);
  if (lstat(output, &st) == 0)
    return sp_err_set(e, SP_EXIT_FAILED, "output %s already exists%s; refusing to replace it",
                      output, S_ISLNK(st.st_mode) ? " (a symlink)" : "");
  if (errno != ENOENT && errno != ENOTDIR)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "output %s", output);
  return 0;
}

/* The output's directory, created 0700 when missing, made canonical. */
static char *output_dir(const char *output, struct sp_err *e)
{
  _cleanup_free_ char *copy = sp_xstrdup(output);
  char *slash = strrchr(copy, '/');
  const char *dir = slash == copy ? "/" : slash ? copy : ".";
  if (slash && slash != copy)
    *slash = '\0';
  struct stat st;
  if (stat(dir, &st) < 0 && errno == ENOENT && sp_mkdir_p(dir, 0700, e) < 0)
    return NULL;
  char *real = realpath(dir, NULL);
  if (!real)
    sp_err_sys(e, SP_EXIT_FAILED, errno, "output directory %s", dir);
  return real;
}

int part_create(struct part_file *p, const char *output, struct sp_err *e)
{
  *p = (struct part_file)PART_FILE_INIT;
  const char *slash = strrchr(output, '/');
  const char *name = slash ? slash + 1 : output;
  if (!(p->dir = output_dir(output, e)))
    return -1;
  p->final = sp_xasprintf("%s%s%s", p->dir, strcmp(p->dir, "/") ? "/" : "", name);
  p->part = sp_xasprintf("%s.part", p->final);
  /* O_EXCL never follows a symlink, and never opens what someone else made. */
  p->fd = open(p->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (p->fd < 0) {
    int err = errno;
    free(p->part); /* not ours: part_discard must not remove it */
    p->part = NULL;
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot create %s.part%s", output,
                      err == EEXIST ? " (another copier running, or left from a crash?)" : "");
  }
  struct stat st;
  if (fchmod(p->fd, 0600) < 0 || fstat(p->fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", p->part);
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  return 0;
}

int part_check(const struct part_file *p, struct sp_err *e)
{
  struct stat st;
  if (lstat(p->part, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != p->dev ||
      st.st_ino != p->ino)
    return sp_err_set(e, SP_EXIT_FAILED, "%s was replaced while being written", p->part);
  return 0;
}

int part_commit(struct part_file *p, struct sp_err *e)
{
  if (part_check(p, e) < 0)
    return -1;
  if (fsync(p->fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", p->part);
  /* NOREPLACE: an output that appeared meanwhile is kept, and we fail. */
  if (renameat2(AT_FDCWD, p->part, AT_FDCWD, p->final, RENAME_NOREPLACE) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot rename %s to %s", p->part, p->final);
  free(p->part);
  p->part = NULL;
  return sp_fsync_dir(p->dir, e);
}

void part_discard(struct part_file *p)
{
  if (p->part)
    unlink(p->part);
  if (p->fd >= 0)
    close(p->fd);
  free(p->dir);
  free(p->part);
  free(p->final);
  *p = (struct part_file){ .fd = -1 };
}
