/* Child processes run N at a time: each one's stderr forwarded line by
 * line with its label in front, its stdout kept in memory when asked,
 * SIGINT/SIGTERM/SIGHUP (arriving on a signalfd) stopping them all.  The
 * copiers of one point and the VMs of `backup --all` both run here. */
#ifndef SP_TASK_POOL_H
#define SP_TASK_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "log.h"
#include "strv.h"

struct task {
  const char *label;       /* put in front of every stderr line: "[label] " */
  struct sp_strv argv;     /* owned; argv.v is NULL-terminated */
  struct sp_strv env;      /* "K=V" added to ours */
  bool capture_out;        /* keep stdout in out (else it is inherited) */
  /* Called for every stderr line (without the label). */
  void (*on_line)(struct task *t, const char *line);
  /* Called once it runs (may be NULL). */
  void (*on_start)(struct task *t);
  void *user;
  /* results */
  int status;              /* exit code (128 + signal when killed); -1 not run */
  double seconds;
  char *out;               /* captured stdout, NUL-terminated */
  size_t out_len;
};

/* Blocks SIGINT, SIGTERM and SIGHUP and returns a signalfd for them (-1
 * with errno): from then on they wait for task_pool_run instead of
 * killing us - inside a pause window they wait until it is closed. */
int task_pool_signalfd(void);

/* Returns 0 when every task exited 0; -1 with e naming the failed ones,
 * or the signal that stopped the run (*signo set).  first_failure_stops:
 * the first task that fails stops the others (SIGTERM) and starts no more -
 * the copiers of one point, which is lost anyway (a full target must not
 * be filled further); not the VMs of `backup --all`, which are independent. */
int task_pool_run(struct task *tasks, size_t n, long parallel, bool first_failure_stops, int sigfd,
                  const struct sp_log *log, int *signo, struct sp_err *e);
/* Asked every every_ms while tasks run: a check that fails (-1, e set)
 * stops them all and fails the run - the copy of a VM that was paused on
 * an I/O error must not go on. */
struct pool_watch {
  int every_ms;
  int (*check)(void *user, struct sp_err *e);
  void *user;
};
/* task_pool_run with a watch (NULL: none). */
int task_pool_run_watched(struct task *tasks, size_t n, long parallel, bool first_failure_stops,
                          int sigfd, const struct pool_watch *watch, const struct sp_log *log,
                          int *signo, struct sp_err *e);
void task_free(struct task *t);

/* Adds "K=V" (value NULL: empty) to a task's environment, and one
 * argument to its argv; never fail (xalloc.h). */
void env_add(struct sp_strv *env, const char *key, const char *value);
void argv_add(struct sp_strv *argv, const char *arg);

#endif
