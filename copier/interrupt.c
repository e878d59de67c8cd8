#include "interrupt.h"

#include <errno.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

int interrupt_init(struct interrupt *it, struct sp_err *e)
{
  sigemptyset(&it->mask);
  sigaddset(&it->mask, SIGINT);
  sigaddset(&it->mask, SIGTERM);
  sigaddset(&it->mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &it->mask, &it->old) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "sigprocmask");
  it->fd = signalfd(-1, &it->mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (it->fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "signalfd");
  return 0;
}

int interrupt_check(const struct interrupt *it, struct sp_err *e)
{
  struct signalfd_siginfo si;
  if (read(it->fd, &si, sizeof si) == (ssize_t)sizeof si)
    return sp_err_set(e, SP_EXIT_FAILED, "interrupted by SIG%s", sigabbrev_np((int)si.ssi_signo));
  return 0;
}

int interrupt_suspend(const struct interrupt *it, struct sp_err *e)
{
  if (interrupt_check(it, e) < 0)
    return -1;
  sigprocmask(SIG_SETMASK, &it->old, NULL);
  return 0;
}

void interrupt_resume(const struct interrupt *it)
{
  sigprocmask(SIG_BLOCK, &it->mask, NULL);
}

void interrupt_fini(struct interrupt *it)
{
  /* The mask stays: the process is ending, and a signal arriving now
   * must not kill it before the .part is removed. */
  if (it->fd >= 0)
    close(it->fd);
  it->fd = -1;
}
