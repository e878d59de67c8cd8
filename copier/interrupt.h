/* SIGINT, SIGTERM and SIGHUP end a copy cleanly (the .part removed, exit
 * 1) instead of killing the process with a half-written file.  They are
 * blocked and read from a signalfd the copy loop polls: no handler, no
 * global flag. */
#ifndef SP_COPY_INTERRUPT_H
#define SP_COPY_INTERRUPT_H

#include <signal.h>
#include <stdbool.h>

#include "err.h"

struct interrupt {
  int fd;         /* signalfd, -1 before init */
  sigset_t old;   /* the mask we started with */
  sigset_t mask;  /* the signals we take over */
};

#define INTERRUPT_INIT { .fd = -1 }

int interrupt_init(struct interrupt *it, struct sp_err *e);
/* -1 with "interrupted by SIGTERM" once one of the signals arrived. */
int interrupt_check(const struct interrupt *it, struct sp_err *e);
/* Around starting a child that must stay stoppable (qemu-nbd inherits
 * the signal mask): back to the original mask, and blocked again.
 * suspend fails when a signal is already pending. */
int interrupt_suspend(const struct interrupt *it, struct sp_err *e);
void interrupt_resume(const struct interrupt *it);
void interrupt_fini(struct interrupt *it);

#endif
