/* Child processes without a shell: argv is passed as it is, and values
 * for the child go in its environment, never into a command string. */
#ifndef SP_CHILD_H
#define SP_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct sp_run_result {
  int status;     /* exit code, or 128 + signal number */
  char *out;      /* captured stdout (NUL-terminated), when asked */
  size_t out_len;
  char *err;      /* captured stderr (NUL-terminated), when asked */
  size_t err_len;
};

enum {
  SP_RUN_CAPTURE_OUT = 1, /* collect stdout instead of inheriting it */
  SP_RUN_CAPTURE_ERR = 2, /* collect stderr instead of inheriting it */
};

/* Runs argv[0] (searched in PATH) with env_extra ("K=V", NULL-terminated,
 * may be NULL) added to our environment, waits for it.  Returns -1 only
 * when it could not be started; its exit status is in r->status. */
int sp_run(char *const argv[], char *const env_extra[], int flags, struct sp_run_result *r,
           struct sp_err *e);
/* As sp_run, with fds[i] as the child's descriptor 3 + i: a program
 * given /proc/self/fd/<3 + i> opens exactly the file we opened and
 * checked, whatever has since been renamed into its place. */
int sp_run_fds(char *const argv[], const int *fds, size_t nfds, int flags,
               struct sp_run_result *r, struct sp_err *e);
void sp_run_result_free(struct sp_run_result *r);

/* Starts argv with env_extra; stdin from /dev/null, stdout/stderr as
 * given (-1 = inherit).  Returns the pid, or -1 with e set. */
pid_t sp_spawn(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
               struct sp_err *e);
/* As sp_spawn, in a process group of its own that the child leads (its
 * pgid is its pid): a copier may be a shell wrapper, and stopping it must
 * stop what it started too (kill(-pid, ...)). */
pid_t sp_spawn_group(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
                     struct sp_err *e);
/* As sp_spawn, in a session of its own (setsid): for a daemon that must
 * outlive us and not get the terminal's signals. */
pid_t sp_spawn_session(char *const argv[], char *const env_extra[], int out_fd, int err_fd,
                       struct sp_err *e);
/* Starts argv with fds[i] as its descriptor 3 + i (dup2 clears
 * close-on-exec there); stdin /dev/null, stdout and stderr inherited. */
pid_t sp_spawn_fds(char *const argv[], char *const env_extra[], const int *fds, size_t nfds,
                   struct sp_err *e);
/* Turns a waitpid status into an exit code (128 + signal when killed). */
int sp_exit_status(int wstatus);
/* What a child wrote into fd (a memfd given as its stdout or stderr), read
 * back from the start: malloc'd and NUL-terminated, its length in *len
 * when len is not NULL; empty when it cannot be read.  NULL when its size
 * cannot be learnt, it holds more than max bytes, or memory runs out. */
char *sp_child_output(int fd, size_t max, size_t *len);

#endif
