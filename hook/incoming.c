#include "incoming.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"

#define MARK ".incoming-migration"

static char *mark_dir(const struct hook_ctx *x)
{
  /* uuid was checked by hook_ctx_load: safe as a path component. */
  return sp_path_join(x->state_dir, x->dom.uuid);
}

int hook_incoming_set(const struct hook_ctx *x, struct sp_err *e)
{
  _cleanup_free_ char *dir = mark_dir(x);
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", dir);
  return sp_write_file_at(fd, MARK, "", 0, 0600, e);
}

bool hook_incoming_take(const struct hook_ctx *x)
{
  _cleanup_free_ char *dir = mark_dir(x);
  _cleanup_free_ char *mark = dir ? sp_path_join(dir, MARK) : NULL;
  struct stat st;
  if (!mark || lstat(mark, &st) < 0)
    return false;
  unlink(mark);
  return time(NULL) - st.st_mtime < HOOK_INCOMING_MAX_AGE_S;
}
