/* swtpm running on a private copy of a TPM state tree (docs/facts.md, "swtpm"):
 * a 0700 temporary directory holds the copy (without .lock), the data and
 * control sockets and swtpm's log.  swtpm initializes itself and sends
 * TPM2_Startup(CLEAR) (--flags not-need-init,startup-clear).  Not
 * --terminate: libtss2's swtpm TCTI opens a new data connection for every
 * command, and swtpm would end after the first; instead swtpm gets SIGTERM
 * when its parent dies (a crash or kill -9 of ours leaves no swtpm, only
 * the directory). */
#ifndef SP_SWTPM_COPY_H
#define SP_SWTPM_COPY_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "state_capture.h"

struct swtpm_copy {
  char dir[64];        /* the private directory, removed by swtpm_copy_stop */
  char sock[96];       /* data socket; the control socket is sock + ".ctrl" */
  pid_t pid;
};
#define SWTPM_COPY_INIT { .pid = -1 }

/* version: "2.0" or "1.2". */
int swtpm_copy_start(struct swtpm_copy *s, const struct sp_tree *tree, const char *version,
                     struct sp_err *e);
/* A connected data socket, waiting up to timeout_ms for swtpm to listen;
 * -1 with e set (swtpm's log in the message) when it does not. */
int swtpm_copy_connect(struct swtpm_copy *s, int timeout_ms, struct sp_err *e);
/* Whether swtpm still runs (reaps it when it ended). */
bool swtpm_copy_alive(struct swtpm_copy *s);
/* Appends the end of swtpm's log to e's message (why it failed). */
void swtpm_copy_explain(const struct swtpm_copy *s, struct sp_err *e);
/* Stops swtpm (if running) and removes the directory; safe to call twice
 * and on a copy that never started. */
void swtpm_copy_stop(struct swtpm_copy *s);

#endif
