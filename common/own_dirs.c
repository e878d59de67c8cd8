#include "own_dirs.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "host.h"

static const struct sp_own_dir own[] = {
  { SP_RUN_DIR, 0711, "run directory (job sockets, locks)" },
  { SP_LOCK_DIR, 0700, "per-VM locks" },
  { SP_MOUNT_DIR, 0700, "mounted points (qemu-nbd sockets, state)" },
  { SP_OFFLINE_DIR, 0700, "marks of offline backups, read by the hook" },
  { SP_INSTANT_DIR, 0711, "instant restores (the points' qemu-nbd sockets)" },
  { SP_LIB_DIR, 0711, "state directory" },
  { SP_SCRATCH_DEFAULT, 0711, "default scratch_dir" },
  { SP_STATE_DEFAULT, 0700, "default state_dir (hook snapshots)" },
  { SP_TARGET_DEFAULT, 0700, "default target" },
};

const struct sp_own_dir *sp_own_dirs(size_t *n)
{
  *n = sizeof own / sizeof own[0];
  return own;
}

const struct sp_own_dir *sp_own_dir_find(const char *path)
{
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (strcmp(own[i].path, path) == 0)
      return &own[i];
  return NULL;
}

/* How one host makes and sees directories: sp_host's ops, or this
 * machine's calls for code that has no host. */
struct dir_ops {
  int (*ensure)(void *ctx, const char *path, mode_t mode, struct sp_err *e);
  bool (*exists)(void *ctx, const char *path);
  void *ctx;
};

static int walk(const struct dir_ops *o, const char *path, mode_t missing, struct sp_err *e)
{
  char buf[PATH_MAX];
  if (path[0] != '/' || snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return sp_err_set(e, SP_EXIT_USAGE, "'%s' is not an absolute directory path", path);
  size_t len = strlen(buf);
  while (len > 1 && buf[len - 1] == '/')
    buf[--len] = '\0';
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p)
      continue;
    char c = *p;
    *p = '\0';
    const struct sp_own_dir *d = sp_own_dir_find(buf);
    if (d ? o->ensure(o->ctx, buf, d->mode, e) < 0
          : !o->exists(o->ctx, buf) && o->ensure(o->ctx, buf, missing, e) < 0)
      return -1;
    if (!(*p = c))
      break;
  }
  return 0;
}

static int host_ensure(void *ctx, const char *path, mode_t mode, struct sp_err *e)
{
  struct sp_host *h = ctx;
  return h->ops->ensure_dir(h, path, mode, 0, 0, e);
}

static bool host_exists(void *ctx, const char *path)
{
  struct sp_host *h = ctx;
  return h->ops->exists(h, path);
}

int sp_dirs_prepare(struct sp_host *h, const char *path, mode_t missing, struct sp_err *e)
{
  const struct dir_ops o = { host_ensure, host_exists, h };
  return walk(&o, path, missing, e);
}

static int local_ensure(void *ctx, const char *path, mode_t mode, struct sp_err *e)
{
  (void)ctx;
  return sp_dir_ensure(path, mode, 0, 0, e);
}

static bool local_exists(void *ctx, const char *path)
{
  (void)ctx;
  return sp_exists(path);
}

int sp_dirs_prepare_local(const char *path, mode_t missing, struct sp_err *e)
{
  const struct dir_ops o = { local_ensure, local_exists, NULL };
  return walk(&o, path, missing, e);
}
