/* Test-only knobs (documented in stillpoint(1) as such): an environment
 * variable naming milliseconds to sleep at one point of the protocol, so
 * tests can kill the coordinator or overrun a bound at that point. */
#ifndef SP_TEST_KNOB_H
#define SP_TEST_KNOB_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline void test_knob_sleep(const char *env)
{
  const char *v = getenv(env);
  long ms = v ? strtol(v, NULL, 10) : 0;
  if (ms > 0) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
}

/* The ACTION of STILLPOINT_TEST_FAILPOINT when it names step, else NULL. */
static inline const char *test_failpoint_action(const char *step)
{
  const char *v = getenv("STILLPOINT_TEST_FAILPOINT");
  const char *colon = v ? strchr(v, ':') : NULL;
  if (!colon || (size_t)(colon - v) != strlen(step) || strncmp(v, step, strlen(step)) != 0)
    return NULL;
  return colon + 1;
}

/* STILLPOINT_TEST_FAILPOINT=STEP:ACTION: at the named step of a backup
 * (docs/design.md, "Failures survived"), the coordinator
 *   kill           - SIGKILLs itself (what OOM or kill -9 does),
 *   exit           - _exit(1)s without any cleanup (a crash that unwinds nothing),
 *   stall          - stops forever (a hung libvirt call; the test kills it),
 *   hold           - SIGSTOPs itself: the test does something (restarts
 *                    libvirtd) and lets it go on with SIGCONT,
 *   kill-guardian  - SIGKILLs its guardian and carries on alone,
 *   kill-both      - SIGKILLs its guardian, then itself (OOM taking both):
 *                    what is left is for the next run's preflight.
 * Nothing happens at any other step or without the variable.  The commit
 * of a Ceph point has actions of its own (rbd_target.c, commit:ACTION):
 *   lost / lost-unread        - the commit lands, then reports a timeout,
 *   timeout / timeout-unread  - the commit is not sent and reports one;
 *   -unread: reading the commit back fails too. */
static inline void test_failpoint(const char *step, pid_t guardian)
{
  const char *action = test_failpoint_action(step);
  if (!action)
    return;
  fprintf(stderr, "stillpoint: test failpoint %s: %s\n", step, action);
  if (strcmp(action, "kill") == 0) {
    raise(SIGKILL);
  } else if (strcmp(action, "exit") == 0) {
    _exit(1);
  } else if (strcmp(action, "stall") == 0) {
    for (;;)
      pause();
  } else if (strcmp(action, "hold") == 0) {
    raise(SIGSTOP);
  } else if (strcmp(action, "kill-both") == 0) {
    if (guardian > 0)
      kill(guardian, SIGKILL);
    raise(SIGKILL);
  } else if (strcmp(action, "kill-guardian") == 0 && guardian > 0) {
    kill(guardian, SIGKILL);
    /* Gone for certain before we go on: the next step meets a dead pipe. */
    struct timespec ts = { 0, 200 * 1000000L };
    nanosleep(&ts, NULL);
  }
}

#endif
