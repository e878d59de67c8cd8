/* Runs the copier once per disk (DESIGN.md, "The copier contract"):
 * `/bin/sh -c COPIER` with the STILLPOINT_* values in its environment,
 * never in the command string; `parallel` at a time; each one's stderr
 * forwarded line by line with the disk in front.  SIGINT/SIGTERM/SIGHUP
 * arrive on a signalfd and stop them all. */
#ifndef SP_COPIERS_H
#define SP_COPIERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "log.h"

struct copy_task {
  const char *target;
  char **env;              /* "K=V", NULL-terminated, owned */
  /* results */
  int status;              /* exit code; -1 not run */
  unsigned long long bytes_written; /* from the copier's summary line, if any */
  bool have_bytes;
  double seconds;
};

/* Returns 0 when every copier exited 0; -1 with e naming the failed
 * disks (or the signal that stopped the run, *signo set). */
int copiers_run(const char *command, struct copy_task *tasks, size_t n, long parallel,
                int sigfd, const struct sp_log *log, int *signo, struct sp_err *e);

/* Adds "K=V" to a NULL-terminated malloc'd env list. */
int env_add(char ***env, const char *key, const char *value);
void env_free(char **env);

#endif
