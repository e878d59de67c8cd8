#include "handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "own_dirs.h"

/* Everything but keep closed: nothing of libvirt's may stay open in a
 * process that outlives the hook (libvirt reads our stdout and stderr to
 * their end). */
static void close_others(int keep)
{
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
  }
  for (int fd = 3; fd < 1024; fd++)
    if (fd != keep)
      close(fd);
}

/* The grandchild: waits for the hook to be gone, runs the backup, and
 * logs its lines and its end to syslog.  Holds the pending lock (keep) to
 * its end: the rate limit. */
static _Noreturn void detached(const char *bin, const char *domain, pid_t hook_pid, int keep)
{
  close_others(keep);
  openlog("stillpoint-hook", LOG_PID, LOG_DAEMON);
  for (int i = 0; i < 600 && (kill(hook_pid, 0) == 0 || errno != ESRCH); i++) {
    struct timespec t = { 0, 100 * 1000 * 1000 };
    nanosleep(&t, NULL);
  }
  sleep(HOOK_HANDOFF_SETTLE_S);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    _exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], STDERR_FILENO);
    execl(bin, bin, "backup", "--only-offline", domain, (char *)NULL);
    dprintf(STDERR_FILENO, "cannot run %s: %s (stillpoint_binary)\n", bin, strerror(errno));
    _exit(127);
  }
  close(p[1]);
  FILE *f = pid > 0 ? fdopen(p[0], "r") : NULL;
  char *line = NULL;
  size_t cap = 0;
  while (f && getline(&line, &cap, f) > 0) {
    line[strcspn(line, "\n")] = '\0';
    syslog(LOG_INFO, "%s: backup_on_stop: %s", domain, line);
  }
  int st = 0;
  if (pid > 0)
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
  syslog(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? LOG_INFO : LOG_WARNING,
         "%s: backup_on_stop: stillpoint backup ended with status %d", domain,
         pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  _exit(0);
}

void hook_backup_on_stop(const struct hook_call *c, const struct hook_ctx *x)
{
  const char *bin = sp_config_str(&x->cfg, SP_KEY_STILLPOINT_BINARY);
  char path[256];
  struct sp_err e = { 0 };
  snprintf(path, sizeof path, "%s/%s.pending", SP_OFFLINE_DIR, x->dom.uuid);
  if (sp_dirs_prepare_local(SP_OFFLINE_DIR, 0700, &e) < 0) {
    sp_error(&c->log, "%s: backup_on_stop: nothing handed off: %s", c->domain, e.msg);
    return;
  }
  /* The rate limit: one pending run per VM, which holds this lock. */
  _cleanup_close_ int lock = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
    if (lock >= 0 && errno == EWOULDBLOCK)
      sp_info(&c->log, "%s: backup_on_stop: a backup of it is pending already: not handed off "
              "again", c->domain);
    else
      sp_error(&c->log, "%s: backup_on_stop: nothing handed off: %s: %s", c->domain, path,
               strerror(errno));
    return;
  }
  pid_t hook_pid = getppid(); /* the supervisor: libvirt waits for it */
  pid_t pid = fork();
  if (pid == 0) {
    if (setsid() < 0 || fcntl(lock, F_SETFD, 0) < 0)
      _exit(1);
    pid_t g = fork();
    if (g == 0)
      detached(bin, c->domain, hook_pid, lock);
    _exit(g < 0);
  }
  int st = 0;
  if (pid > 0)
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
  if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    sp_error(&c->log, "%s: backup_on_stop: nothing handed off: cannot start the detached "
             "process", c->domain);
  else
    sp_info(&c->log, "%s: backup_on_stop: `%s backup --only-offline %s` handed off", c->domain,
            bin, c->domain);
}
