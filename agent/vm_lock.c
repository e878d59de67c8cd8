#include "vm_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "uuid.h"

int lock_file_try(const char *file, int *fd_out, bool *taken, struct sp_err *e)
{
  *fd_out = -1;
  *taken = false;
  if (sp_dirs_prepare_local(SP_LOCK_DIR, 0700, e) < 0) {
    sp_err_prefix(e, "cannot take a lock in %s (run as root)", SP_LOCK_DIR);
    e->code = SP_EXIT_PREFLIGHT;
    return -1;
  }
  char path[256];
  snprintf(path, sizeof path, "%s/%s", SP_LOCK_DIR, file);
  _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "cannot open the lock %s (run as root)", path);
  if (flock(fd, LOCK_EX | LOCK_NB) == 0)
    *taken = true;
  else if (errno != EWOULDBLOCK)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot lock %s", path);
  *fd_out = steal_fd(&fd);
  return 0;
}

int vm_lock_take(const char *uuid, const char *name, const char *what, struct vm_lock *l,
                 struct sp_err *e)
{
  l->fd = -1;
  if (!sp_uuid_ok(uuid))
    return sp_err_set(e, SP_EXIT_FAILED, "'%s' is not a UUID", uuid);
  char file[64];
  snprintf(file, sizeof file, "%s.lock", uuid);
  bool taken;
  _cleanup_close_ int fd = -1;
  if (lock_file_try(file, &fd, &taken, e) < 0)
    return -1;
  if (!taken) {
    char holder[512] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    return sp_err_set(e, SP_EXIT_FAILED, "%s is busy: another stillpoint holds it (%s); try "
                      "again when it is done", name, holder[0] ? holder : "holder unknown");
  }
  char stamp[32], line[512];
  sp_utc_now(stamp);
  int len = snprintf(line, sizeof line, "%s of %s by pid %d since %s\n", what, name,
                     (int)getpid(), stamp);
  if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot write the lock of %s", name);
  l->fd = steal_fd(&fd);
  return 0;
}

void vm_lock_release(struct vm_lock *l)
{
  if (l->fd >= 0) {
    close(l->fd);
    l->fd = -1;
  }
}
