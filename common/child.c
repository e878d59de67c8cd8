#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "xalloc.h"

extern char **environ;

int sp_exit_status(int wstatus)
{
  if (WIFEXITED(wstatus))
    return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus))
    return 128 + WTERMSIG(wstatus);
  return 255;
}

char *sp_child_output(int fd, size_t max, size_t *len)
{
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || (uint64_t)size > max)
    return NULL;
  char *buf = malloc((size_t)size + 1);
  if (!buf)
    return NULL;
  ssize_t n = pread(fd, buf, (size_t)size, 0);
  size_t got = n > 0 ? (size_t)n : 0;
  buf[got] = '\0';
  if (len)
    *len = got;
  return buf;
}

/* environ plus extra; an extra "K=V" replaces an inherited K. */
static char **merged_env(char *const extra[])
{
  size_t ne = 0, nx = 0;
  while (environ[ne])
    ne++;
  while (extra && extra[nx])
    nx++;
  char **env = sp_xcalloc(ne + nx + 1, sizeof *env);
  size_t k = 0;
  for (size_t i = 0; i < ne; i++) {
    size_t klen = strcspn(environ[i], "=");
    bool replaced = false;
    for (size_t j = 0; j < nx && !replaced; j++)
      replaced = strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=';
    if (!replaced)
      env[k++] = environ[i];
  }
  for (size_t j = 0; j < nx; j++)
    env[k++] = extra[j];
  return env;
}

/* own: 0, POSIX_SPAWN_SETSID (a session of its own) or POSIX_SPAWN_SETPGROUP
 * (a process group of its own, led by the child). */
static pid_t spawn(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
                   const int *fds, size_t nfds, short own, struct sp_err *e)
{
  _cleanup_free_ char **env = merged_env(env_extra);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  if (err_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  for (size_t i = 0; i < nfds; i++)
    posix_spawn_file_actions_adddup2(&fa, fds[i], 3 + (int)i);
  /* The child starts with default signal handling and an empty mask,
   * whatever the coordinator blocks or catches. */
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | own);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return sp_err_sys(e, SP_EXIT_FAILED, rc, "cannot run %s", argv[0]);
  return pid;
}

pid_t sp_spawn(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
               struct sp_err *e)
{
  return spawn(argv, env_extra, out_fd, err_fd, NULL, 0, 0, e);
}

pid_t sp_spawn_group(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
                     struct sp_err *e)
{
  return spawn(argv, env_extra, out_fd, err_fd, NULL, 0, POSIX_SPAWN_SETPGROUP, e);
}

pid_t sp_spawn_session(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
                       struct sp_err *e)
{
  return spawn(argv, env_extra, out_fd, err_fd, NULL, 0, POSIX_SPAWN_SETSID, e);
}

pid_t sp_spawn_fds(char *const argv[], char *const env_extra[], const int *fds, size_t nfds,
                   struct sp_err *e)
{
  return spawn(argv, env_extra, -1, -1, fds, nfds, 0, e);
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
  char *nb = sp_xrealloc(*buf, *len + n + 1);
  memcpy(nb + *len, data, n);
  *len += n;
  nb[*len] = '\0';
  *buf = nb;
}

static int run(char *const argv[], char *const env_extra[], const int *fds, size_t nfds,
               int flags, struct sp_run_result *r, struct sp_err *e)
{
  memset(r, 0, sizeof *r);
  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
  if (((flags & SP_RUN_CAPTURE_OUT) && pipe2(outp, O_CLOEXEC) < 0) ||
      ((flags & SP_RUN_CAPTURE_ERR) && pipe2(errp, O_CLOEXEC) < 0)) {
    int err = errno;
    for (int i = 0; i < 2; i++) {
      if (outp[i] >= 0)
        close(outp[i]);
      if (errp[i] >= 0)
        close(errp[i]);
    }
    return sp_err_sys(e, SP_EXIT_FAILED, err, "pipe");
  }
  pid_t pid = spawn(argv, env_extra, outp[1], errp[1], fds, nfds, 0, e);
  if (outp[1] >= 0)
    close(outp[1]);
  if (errp[1] >= 0)
    close(errp[1]);
  struct pollfd pf[2] = { { .fd = outp[0], .events = POLLIN },
                          { .fd = errp[0], .events = POLLIN } };
  while (pid > 0 && (pf[0].fd >= 0 || pf[1].fd >= 0)) {
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (pf[i].fd < 0 || !pf[i].revents)
        continue;
      char buf[65536];
      ssize_t n = read(pf[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        close(pf[i].fd);
        pf[i].fd = -1;
      } else {
        append(i ? &r->err : &r->out, i ? &r->err_len : &r->out_len, buf, (size_t)n);
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (pf[i].fd >= 0)
      close(pf[i].fd);
  if (pid < 0)
    return -1;
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "waiting for %s", argv[0]);
  r->status = sp_exit_status(ws);
  if ((flags & SP_RUN_CAPTURE_OUT) && !r->out)
    append(&r->out, &r->out_len, "", 0);
  if ((flags & SP_RUN_CAPTURE_ERR) && !r->err)
    append(&r->err, &r->err_len, "", 0);
  return 0;
}

int sp_run(char *const argv[], char *const env_extra[], int flags, struct sp_run_result *r,
           struct sp_err *e)
{
  return run(argv, env_extra, NULL, 0, flags, r, e);
}

int sp_run_fds(char *const argv[], const int *fds, size_t nfds, int flags,
               struct sp_run_result *r, struct sp_err *e)
{
  memset(r, 0, sizeof *r);
  /* Copies above 3 + nfds first, so that no dup2 to 3 + i overwrites a
   * descriptor still to be passed. */
  _cleanup_free_ int *high = sp_xcalloc(nfds ? nfds : 1, sizeof *high);
  size_t made = 0;
  int rc = 0;
  for (; made < nfds; made++)
    if ((high[made] = fcntl(fds[made], F_DUPFD_CLOEXEC, 3 + (int)nfds)) < 0) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "starting %s", argv[0]);
      break;
    }
  if (rc == 0)
    rc = run(argv, NULL, high, nfds, flags, r, e);
  for (size_t i = 0; i < made; i++)
    close(high[i]);
  return rc;
}

void sp_run_result_free(struct sp_run_result *r)
{
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof *r);
}
