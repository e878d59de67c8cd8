#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"

void hook_status(const struct hook_call *c, char status)
{
  /* A lost byte only loses a BLOCK, and not blocking is the safe side. */
  if (c->status_fd >= 0 && write(c->status_fd, &status, 1) != 1)
    sp_debug(&c->log, "%s: status pipe: %s", c->domain, strerror(errno));
}

static _Noreturn void worker(struct hook_call *c, void (*action)(struct hook_call *),
                             int err_w, int status_w)
{
  /* Nothing of libvirt's: /dev/null for stdin and stdout, our pipe for
   * stderr (dup2 leaves them without close-on-exec, as they should be). */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
      dup2(err_w, STDERR_FILENO) < 0)
    _exit(0);
  close(null);
  close(err_w);
  c->status_fd = status_w;
  action(c);
  hook_exit(0);
}

/* Copies what a pipe has to our stderr (log) or keeps its last byte
 * (status); false at EOF. */
static bool drain(int fd, bool is_status, char *last)
{
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (n <= 0)
    return false;
  if (is_status) {
    *last = buf[n - 1];
    return true;
  }
  /* Our stderr is libvirt's pipe: a failed write loses a log line, no more. */
  for (ssize_t off = 0, w; off < n; off += w) {
    w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
    if (w <= 0)
      break;
  }
  return true;
}

/* Waits until the worker closed both pipes (it exited) or the deadline;
 * true when the deadline came first. */
static bool wait_pipes(int err_r, int status_r, long long deadline_ms, char *last)
{
  struct pollfd p[2] = { { .fd = err_r, .events = POLLIN }, { .fd = status_r, .events = POLLIN } };
  while (p[0].fd >= 0 || p[1].fd >= 0) {
    long long left = deadline_ms - sp_now_ms();
    if (left <= 0)
      return true;
    int r = poll(p, 2, (int)left);
    if (r < 0 && errno != EINTR)
      return false;
    for (int i = 0; i < 2 && r > 0; i++)
      if (p[i].fd >= 0 && p[i].revents && !drain(p[i].fd, i == 1, last))
        p[i].fd = -1;
  }
  return false;
}

/* Collects the worker's exit, a little past the deadline at most (a
 * killed worker stuck in the kernel is left to init). */
static void reap(const struct hook_call *c, pid_t pid)
{
  long long until = sp_now_ms() + 200;
  int st;
  pid_t r;
  while ((r = waitpid(pid, &st, WNOHANG)) == 0 && sp_now_ms() < until) {
    struct timespec pause = { 0, 2 * 1000 * 1000 };
    nanosleep(&pause, NULL);
  }
  if (r == pid && WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
    sp_error(&c->log, "%s: %s %s: the worker died of signal %d (a bug: please report it); "
             "libvirt goes on", c->domain, c->op, c->subop, WTERMSIG(st));
}

int hook_supervise(struct hook_call *c, void (*action)(struct hook_call *), long long deadline_ms)
{
  int errp[2] = { -1, -1 }, stp[2] = { -1, -1 };
  pid_t pid = -1;
  if (pipe2(errp, O_CLOEXEC) == 0 && pipe2(stp, O_CLOEXEC) == 0)
    pid = fork();
  if (pid == 0) {
    close(errp[0]);
    close(stp[0]);
    worker(c, action, errp[1], stp[1]);
  }
  int saved = errno;
  /* The supervisor keeps only the read ends: EOF then means the worker is gone. */
  _cleanup_close_ int err_r = errp[0], status_r = stp[0];
  sp_closep(&errp[1]);
  sp_closep(&stp[1]);
  if (pid < 0) {
    sp_error(&c->log, "%s: %s %s: cannot start the worker: %s; nothing done", c->domain, c->op,
             c->subop, strerror(saved));
    return 0;
  }
  char last = 0;
  if (wait_pipes(err_r, status_r, deadline_ms, &last)) {
    kill(pid, SIGKILL);
    sp_warn(&c->log, "%s: %s %s: abandoned after %d ms (the hook's time bound); whatever it "
            "had not finished is not done, and libvirt goes on", c->domain, c->op, c->subop,
            HOOK_BUDGET_MS);
  }
  reap(c, pid);
  if (last != HOOK_STATUS_BLOCK)
    return 0;
  sp_error(&c->log, "%s: refusing the start: its TPM state is lost and was not put back "
           "(policy block_start_on_tpm_loss = yes)", c->domain);
  return 1;
}
