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

struct task {
  const char *label;       /* put in front of every stderr line: "[label] " */
  char **argv;             /* owned, NULL-terminated */
  char **env;              /* "K=V" added to ours, owned, NULL-terminated */
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
void task_free(struct task *t);

/* Adds to a NULL-terminated malloc'd list: "K=V" for env_add, one string
 * for argv_add. */
int env_add(char ***env, const char *key, const char *value);
int argv_add(char ***argv, const char *arg);
void strv_free(char **v);

#endif
