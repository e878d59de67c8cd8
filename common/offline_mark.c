#include "offline_mark.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "uuid.h"

char *sp_offline_mark_path(const char *uuid)
{
  char *p = NULL;
  if (!sp_uuid_ok(uuid) || asprintf(&p, "%s/%s", SP_OFFLINE_DIR, uuid) < 0)
    return NULL;
  return p;
}

/* Whether someone holds the VM's lock: a shared lock we cannot get. */
static int lock_held(const char *uuid)
{
  char path[256];
  snprintf(path, sizeof path, "%s/%s.lock", SP_LOCK_DIR, uuid);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? -1 : 1; /* -1: no lock file here (a remote coordinator) */
  if (flock(fd, LOCK_SH | LOCK_NB) < 0)
    return errno == EWOULDBLOCK ? 1 : 0;
  flock(fd, LOCK_UN);
  return 0;
}

bool sp_offline_mark_active(const char *uuid)
{
  _cleanup_free_ char *mark = sp_offline_mark_path(uuid);
  struct stat st;
  if (!mark || lstat(mark, &st) < 0 || !S_ISREG(st.st_mode))
    return false;
  int held = lock_held(uuid);
  if (held >= 0)
    return held == 1;
  return time(NULL) - st.st_mtime < SP_OFFLINE_MARK_MAX_AGE_S;
}
