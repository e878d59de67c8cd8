#include "handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "err.h"
#include "handoff_choice.h"
#include "own_dirs.h"
#include "uuid.h"

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

/* The VM's pending lock, taken without waiting: the rate limit (one
 * pending run per VM).  -1 with errno EWOULDBLOCK when a run holds it. */
static int pending_lock(const char *uuid)
{
  char path[256];
  snprintf(path, sizeof path, "%s/%s.pending", SP_OFFLINE_DIR, uuid);
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    fd = -1;
  }
  return fd;
}

/* The detached run: waits for the hook to be gone, runs the backup, and
 * logs its lines and its end to syslog (the journal under systemd).  Holds
 * the pending lock (keep) to its end.  detach: a double fork's grandchild,
 * which must let go of libvirt's descriptors; a systemd unit has none. */
static _Noreturn void detached(const char *bin, const char *domain, pid_t hook_pid, int keep,
                               bool detach)
{
  if (detach)
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

int hook_handoff_run(const char *bin, const char *domain, const char *uuid, const char *pid_text)
{
  char *end = NULL;
  long hook_pid = strtol(pid_text, &end, 10);
  if (!sp_uuid_ok(uuid) || !end || *end || hook_pid <= 0) {
    fprintf(stderr, "stillpoint-hook: " HOOK_HANDOFF_RUN_OPT " needs BIN DOMAIN UUID HOOK_PID "
            "(the hook's own hand-off under systemd-run; not for use by hand)\n");
    return SP_EXIT_USAGE;
  }
  struct sp_err e = { 0 };
  int lock = sp_dirs_prepare_local(SP_OFFLINE_DIR, 0700, &e) < 0 ? -1 : pending_lock(uuid);
  if (lock < 0) {
    fprintf(stderr, "stillpoint-hook: %s: backup_on_stop: not run: %s\n", domain,
            e.msg[0] ? e.msg
            : errno == EWOULDBLOCK ? "a backup of it is pending already"
                                   : strerror(errno));
    return SP_EXIT_PREFLIGHT;
  }
  detached(bin, domain, (pid_t)hook_pid, lock, false);
}

/* systemd-run with the hook's own --backup-on-stop as the unit's command;
 * its stdout joins stderr (libvirt reads the hook's stdout).  0 when
 * systemd-run started the unit. */
static int systemd_hand_off(const struct hook_call *c, const struct hook_ctx *x, const char *bin)
{
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  struct hook_handoff_argv a;
  if (n <= 0 || (self[n] = '\0', hook_handoff_systemd_argv(&a, self, bin, c->domain, x->dom.uuid,
                                                          (long)getppid(),
                                                          getenv("STILLPOINT_CONFDIR"))) < 0) {
    sp_error(&c->log, "%s: backup_on_stop: nothing handed off: cannot build the systemd-run "
             "command (the hook's path or the configuration directory is too long)", c->domain);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
      _exit(127);
    execv(a.argv[0], (char *const *)a.argv);
    _exit(127);
  }
  int st = 0;
  if (pid > 0)
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
  if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;
  sp_error(&c->log, "%s: backup_on_stop: nothing handed off: %s failed (exit %d); if its unit "
           "%s exists, a backup of the VM is pending already (journalctl -u %s)", c->domain,
           HOOK_SYSTEMD_RUN, pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, a.unit + 7,
           a.unit + 7);
  return -1;
}

/* fork, setsid, fork: the grandchild belongs to nobody but init. */
static int double_fork(const struct hook_call *c, const char *bin, int lock)
{
  pid_t hook_pid = getppid(); /* the supervisor: libvirt waits for it */
  pid_t pid = fork();
  if (pid == 0) {
    if (setsid() < 0 || fcntl(lock, F_SETFD, 0) < 0)
      _exit(1);
    pid_t g = fork();
    if (g == 0)
      detached(bin, c->domain, hook_pid, lock, true);
    _exit(g < 0);
  }
  int st = 0;
  if (pid > 0)
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
  if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;
  sp_error(&c->log, "%s: backup_on_stop: nothing handed off: cannot start the detached "
           "process", c->domain);
  return -1;
}

void hook_backup_on_stop(const struct hook_call *c, const struct hook_ctx *x)
{
  const char *bin = sp_config_str(&x->cfg, SP_KEY_STILLPOINT_BINARY);
  struct sp_err e = { 0 };
  if (sp_dirs_prepare_local(SP_OFFLINE_DIR, 0700, &e) < 0) {
    sp_error(&c->log, "%s: backup_on_stop: nothing handed off: %s", c->domain, e.msg);
    return;
  }
  /* The rate limit: one pending run per VM, which holds this lock. */
  _cleanup_close_ int lock = pending_lock(x->dom.uuid);
  if (lock < 0) {
    if (errno == EWOULDBLOCK)
      sp_info(&c->log, "%s: backup_on_stop: a backup of it is pending already: not handed off "
              "again", c->domain);
    else
      sp_error(&c->log, "%s: backup_on_stop: nothing handed off: %s/%s.pending: %s", c->domain,
               SP_OFFLINE_DIR, x->dom.uuid, strerror(errno));
    return;
  }
  struct stat st;
  enum hook_handoff how = hook_handoff_choose(
    stat(HOOK_SYSTEMD_DIR, &st) == 0 && S_ISDIR(st.st_mode), access(HOOK_SYSTEMD_RUN, X_OK) == 0);
  /* The unit takes the lock itself; systemd refuses a second unit of the
   * same name meanwhile. */
  if (how == HOOK_HANDOFF_SYSTEMD_RUN) {
    sp_closep(&lock);
    lock = -1;
  }
  if ((how == HOOK_HANDOFF_SYSTEMD_RUN ? systemd_hand_off(c, x, bin)
                                       : double_fork(c, bin, lock)) == 0)
    sp_info(&c->log, "%s: backup_on_stop: `%s backup --only-offline %s` handed off through %s",
            c->domain, bin, c->domain, hook_handoff_name(how));
}
