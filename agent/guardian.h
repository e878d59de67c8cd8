/* The guardian: a separate process, started before the pause with its own
 * libvirt connection, that resumes (and thaws) the VM when the coordinator
 * dies - any signal, kill -9 included - or when the pause overruns
 * pause_max_ms (invariant 1 of docs/design.md); with pause = off, when
 * the guest stays frozen longer than pause_max_ms, it thaws it.
 *
 * It is this program again (`stillpoint __guardian`), spawned through
 * /proc/self/exe rather than forked: a fresh process image owes nothing to
 * the coordinator's libvirt connection or threads.  The coordinator tells
 * it what state the VM is in over a pipe; the pipe's EOF is how it learns
 * the coordinator is gone.  The coordinator outlives a dead guardian: it
 * ignores SIGPIPE, says "guardian lost" once, and still resumes and thaws
 * the VM itself. */
#ifndef SP_GUARDIAN_H
#define SP_GUARDIAN_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "log.h"

struct guardian {
  pid_t pid;
  int cmd_fd;    /* coordinator -> guardian */
  int report_fd; /* guardian -> coordinator */
  const struct sp_log *log;
  bool lost;     /* it died under us: said once, then we carry on alone */
};
#define GUARDIAN_INIT { .pid = -1, .cmd_fd = -1, .report_fd = -1 }

/* What the guardian cleans up when the coordinator dies after the job
 * began: the job itself, the new checkpoint (so no later incremental
 * builds on a point that never completed), the job's directories. */
struct guardian_job {
  const char *checkpoint;
  const char *rundir;
  const char *scratchdir;
  const char *point; /* the point's final path ("" when not on this machine): once it
                      * exists the point is complete and its checkpoint is kept,
                      * as after guardian_tell_published() */
};

/* Starts it, without waiting: its start (a process image, its libvirt
 * connection, the domain's lookup: 60-80 ms) overlaps what the coordinator
 * makes meanwhile.  Should we die from here on, it removes the job's
 * directories (named in job, made or not) once connected. */
int guardian_spawn(struct guardian *g, const char *uri, const char *uuid, long pause_max_ms,
                   const struct guardian_job *job, const struct sp_log *log, struct sp_err *e);
/* Waits until it holds its own libvirt connection to the domain (so it can
 * act from the first instant of the pause); a guardian that does not get
 * there within 10 s is stopped and the run fails before anything is
 * paused. */
int guardian_wait_ready(struct guardian *g, struct sp_err *e);
/* The VM is (about to be) paused by us / resumed / frozen / thawed. */
void guardian_tell_paused(struct guardian *g);
void guardian_tell_resumed(struct guardian *g);
void guardian_tell_frozen(struct guardian *g);
void guardian_tell_thawed(struct guardian *g);
/* pause = off, told once the freeze answered: no pause follows, so the
 * guest's frozen span is bounded by pause_max_ms from now until thawed
 * (the guardian thaws it and reports an overrun past that). */
void guardian_tell_held(struct guardian *g);
/* The backup job is (about to be) begun / was not begun after all. */
void guardian_tell_begun(struct guardian *g);
void guardian_tell_not_begun(struct guardian *g);
/* A shut-off VM is (about to be) started paused for an offline point /
 * was stopped again: the guardian destroys a VM it believes started when
 * the coordinator dies (unless someone resumed it meanwhile). */
void guardian_tell_started(struct guardian *g);
void guardian_tell_not_started(struct guardian *g);
/* The backup job has ended (the copy is over): a coordinator dying from
 * here on leaves no job to abort, and the checkpoint goes only if the
 * point never became complete. */
void guardian_tell_ended(struct guardian *g);
/* The point is complete - renamed to <id>, or committed to a Ceph pool's
 * index, where no local path shows it: a coordinator dying from here on
 * (before it stops the guardian) must not cost the point its checkpoint. */
void guardian_tell_published(struct guardian *g);
/* Whether the guardian had to resume (or, with pause = off, thaw) the VM
 * because the window overran; waits up to wait_ms for its word. */
bool guardian_overran(struct guardian *g, int wait_ms);
/* Ends it normally and reaps it: the coordinator has put everything right
 * itself (or the point is complete). */
void guardian_stop(struct guardian *g);

/* The guardian process itself: argv = { "__guardian", URI, UUID, MAX_MS,
 * DEBUG, CHECKPOINT, RUNDIR, SCRATCHDIR, POINT },
 * commands on fd 3, reports on fd 4. */
int guardian_main(int argc, char **argv);

#endif
