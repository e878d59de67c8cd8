/* migrate begin (destination host only): mark the incoming migration for
 * the prepare that follows (incoming.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "hook.h"
#include "incoming.h"

#define MARK ".incoming-migration"

static char *mark_dir(const struct hook_ctx *x)
{
  /* uuid was checked by hook_ctx_load: safe as a path component. */
  return sp_path_join(x->state_dir, x->dom.uuid);
}

int hook_incoming_set(const struct hook_ctx *x, struct sp_err *e)
{
  _cleanup_free_ char *dir = mark_dir(x);
  if (!dir)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "incoming migration mark");
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

void hook_migrate(struct hook_call *c)
{
  _cleanup_(hook_ctx_free) struct hook_ctx x = { 0 };
  struct sp_err e = { 0 };
  if (hook_ctx_load(c, &x, &e) < 0 || hook_incoming_set(&x, &e) < 0)
    sp_warn(&c->log, "%s: incoming migration not marked (the start may report its TPM state "
            "as lost): %s", c->domain, e.msg);
}
