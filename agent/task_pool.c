#include "task_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "clock.h"
#include "xalloc.h"

void env_add(struct sp_strv *env, const char *key, const char *value)
{
  sp_strv_push_take(env, sp_xasprintf("%s=%s", key, value ? value : ""));
}

void argv_add(struct sp_strv *argv, const char *arg)
{
  sp_strv_push(argv, arg);
}

int task_pool_signalfd(void)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  return signalfd(-1, &set, SFD_CLOEXEC);
}

void task_free(struct task *t)
{
  sp_strv_free(&t->argv);
  sp_strv_free(&t->env);
  free(t->out);
  t->out = NULL;
}

/* One running task. */
struct running {
  struct task *task;
  pid_t pid;
  int pidfd, errfd;
  int outfd;                /* memfd holding its stdout, when captured */
  long long started;
  char line[4096];
  size_t linelen;
};

static void flush_line(struct running *r, const struct sp_log *log)
{
  r->line[r->linelen] = '\0';
  if (r->task->on_line)
    r->task->on_line(r->task, r->line);
  fprintf(stderr, "[%s] %s\n", r->task->label, r->line);
  (void)log;
  r->linelen = 0;
}

/* Reads what is there; returns false once the pipe is closed (EOF, or
 * nothing left when draining a copier that has exited). */
static bool forward(struct running *r, const struct sp_log *log)
{
  char buf[4096];
  ssize_t n = read(r->errfd, buf, sizeof buf);
  if (n < 0 && errno == EINTR)
    return true;
  if (n <= 0) {
    if (r->linelen)
      flush_line(r, log);
    close(r->errfd);
    r->errfd = -1;
    return false;
  }
  for (ssize_t i = 0; i < n; i++) {
    /* \r: a tty progress line rewritten in place; keep only finished lines. */
    if (buf[i] == '\n' || buf[i] == '\r') {
      if (r->linelen)
        flush_line(r, log);
    } else if (r->linelen < sizeof r->line - 1) {
      r->line[r->linelen++] = buf[i];
    }
  }
  return true;
}

/* The copier has exited: read the rest of its stderr without waiting for
 * an EOF that a grandchild still holding the pipe would delay. */
static void drain(struct running *r, const struct sp_log *log)
{
  if (r->errfd < 0)
    return;
  int fl = fcntl(r->errfd, F_GETFL);
  fcntl(r->errfd, F_SETFL, fl | O_NONBLOCK);
  while (forward(r, log))
    ;
}

static int start(struct running *r, struct task *t, struct sp_err *e)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "pipe");
  r->outfd = -1;
  if (t->capture_out && (r->outfd = memfd_create("task-stdout", MFD_CLOEXEC)) < 0) {
    int err = errno;
    close(p[0]);
    close(p[1]);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "memfd_create");
  }
  r->task = t;
  r->pid = sp_spawn_group(t->argv.v, t->env.v, r->outfd, p[1], e);
  close(p[1]);
  if (r->pid < 0) {
    close(p[0]);
    return -1;
  }
  r->errfd = p[0];
  r->pidfd = pidfd_open(r->pid, 0);
  r->started = sp_now_ms();
  r->linelen = 0;
  if (r->pidfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "pidfd_open");
  if (t->on_start)
    t->on_start(t);
  return 0;
}

/* The captured stdout, read back from the start of its memfd. */
static void collect_out(struct running *r)
{
  if (r->outfd < 0)
    return;
  r->task->out = sp_child_output(r->outfd, SIZE_MAX, &r->task->out_len);
  close(r->outfd);
  r->outfd = -1;
}

static void reap(struct running *r)
{
  int ws;
  while (waitpid(r->pid, &ws, 0) < 0)
    if (errno != EINTR) {
      ws = 255 << 8;
      break;
    }
  r->task->status = sp_exit_status(ws);
  r->task->seconds = (double)(sp_now_ms() - r->started) / 1000.0;
  collect_out(r);
  close(r->pidfd);
  r->pidfd = -1;
  r->pid = -1;
}

/* Each copier leads a process group of its own (sp_spawn_group): the whole
 * group is stopped, so a wrapper's children (a `sleep`, a real copier it
 * started) do not live on holding our output or the export. */
static void stop_all(struct running *run, size_t nrun)
{
  for (size_t i = 0; i < nrun; i++)
    if (run[i].pid > 0)
      kill(-run[i].pid, SIGTERM);
  for (size_t i = 0; i < nrun; i++) {
    if (run[i].pid > 0)
      reap(&run[i]);
    if (run[i].errfd >= 0) {
      close(run[i].errfd);
      run[i].errfd = -1;
    }
  }
}

int task_pool_run(struct task *tasks, size_t n, long parallel, bool first_failure_stops, int sigfd,
                  const struct sp_log *log, int *signo, struct sp_err *e)
{
  return task_pool_run_watched(tasks, n, parallel, first_failure_stops, sigfd, NULL, log, signo,
                               e);
}

int task_pool_run_watched(struct task *tasks, size_t n, long parallel, bool first_failure_stops,
                          int sigfd, const struct pool_watch *watch, const struct sp_log *log,
                          int *signo, struct sp_err *e)
{
  *signo = 0;
  for (size_t i = 0; i < n; i++)
    tasks[i].status = -1;
  size_t slots = (size_t)(parallel < 1 ? 1 : parallel);
  if (slots > n)
    slots = n;
  _cleanup_free_ struct running *run = sp_xcalloc(slots ? slots : 1, sizeof *run);
  _cleanup_free_ struct pollfd *pfd = sp_xcalloc(2 * slots + 1, sizeof *pfd);
  for (size_t i = 0; i < slots; i++)
    run[i].pid = run[i].pidfd = run[i].errfd = run[i].outfd = -1;

  size_t next = 0, active = 0;
  int rc = 0;
  bool stopping = false;
  while (rc == 0 && !stopping && (next < n || active > 0)) {
    for (size_t s = 0; s < slots && next < n; s++) {
      if (run[s].pid > 0 || run[s].errfd >= 0)
        continue;
      if (start(&run[s], &tasks[next], e) < 0) {
        rc = -1;
        break;
      }
      next++;
      active++;
    }
    if (rc < 0)
      break;
    size_t np = 0;
    pfd[np++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
    for (size_t s = 0; s < slots; s++) {
      pfd[np++] = (struct pollfd){ .fd = run[s].errfd, .events = POLLIN };
      pfd[np++] = (struct pollfd){ .fd = run[s].pidfd, .events = POLLIN };
    }
    int ready = poll(pfd, np, watch ? watch->every_ms : -1);
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "poll");
      break;
    }
    if (watch && watch->check(watch->user, e) < 0) {
      rc = -1;
      break;
    }
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sigfd, &si, sizeof si) == sizeof si) {
        *signo = (int)si.ssi_signo;
        rc = sp_err_set(e, SP_EXIT_FAILED, "stopped by signal %d (%s)", *signo,
                        strsignal(*signo));
        break;
      }
    }
    for (size_t s = 0; s < slots; s++) {
      struct running *r = &run[s];
      if (r->errfd >= 0 && pfd[1 + 2 * s].revents)
        forward(r, log);
      if (r->pid > 0 && (pfd[2 + 2 * s].revents & POLLIN)) {
        drain(r, log); /* the summary line is read before the disk is done */
        reap(r);
        active--;
        if (first_failure_stops && r->task->status != 0) {
          if (active > 0 || next < n)
            sp_error(log, "%s failed (exit %d): stopping the others", r->task->label,
                     r->task->status);
          stopping = true;
        }
      }
    }
  }
  stop_all(run, slots);
  if (rc < 0)
    return -1;
  char failed[512] = "";
  for (size_t i = 0; i < n; i++)
    if (tasks[i].status != 0) {
      size_t l = strlen(failed);
      if (tasks[i].status < 0)
        snprintf(failed + l, sizeof failed - l, "%s%s (not started)", l ? ", " : "",
                 tasks[i].label);
      else
        snprintf(failed + l, sizeof failed - l, "%s%s (exit %d)", l ? ", " : "",
                 tasks[i].label, tasks[i].status);
    }
  if (failed[0])
    return sp_err_set(e, SP_EXIT_FAILED, "failed for %s", failed);
  return 0;
}
