#include "guardian.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "offline_mark.h"
#include "virt.h"

enum {
  MSG_READY = 'K',   /* guardian -> coordinator: connected, watching */
  MSG_OVERRUN = 'O', /* guardian -> coordinator: resumed on the deadline */
  MSG_PAUSED = 'P',
  MSG_RESUMED = 'R',
  MSG_FROZEN = 'F',
  MSG_HELD = 'H',    /* pause = off: the freeze alone holds the guest; bound it */
  MSG_THAWED = 'T',
  MSG_BEGUN = 'B',
  MSG_NOT_BEGUN = 'b',
  MSG_STARTED = 'S',
  MSG_NOT_STARTED = 's',
  MSG_ENDED = 'E',
  MSG_PUBLISHED = 'C', /* the point is committed: its checkpoint stays */
  MSG_QUIT = 'Q',
};

enum { CMD_FD = 3, REPORT_FD = 4 };

/* A failed write means the other side is gone (EPIPE: the coordinator
 * ignores SIGPIPE before it starts a guardian, the guardian always). */
static bool send_byte(int fd, char c)
{
  ssize_t n;
  while ((n = write(fd, &c, 1)) < 0 && errno == EINTR)
    ;
  return n == 1;
}

/* The coordinator's side: a dead guardian is said once; the coordinator
 * goes on and puts the VM right itself on every path. */
static void tell(struct guardian *g, char c)
{
  if (send_byte(g->cmd_fd, c) || g->lost)
    return;
  g->lost = true;
  sp_warn(g->log, "guardian lost (%s): carrying on without it; stillpoint resumes and thaws "
          "the VM itself, but nothing would if stillpoint died now", strerror(errno));
}

int guardian_spawn(struct guardian *g, const char *uri, const char *uuid, long pause_max_ms,
                   const struct guardian_job *job, const struct sp_log *log, struct sp_err *e)
{
  g->pid = -1;
  g->cmd_fd = g->report_fd = -1;
  g->log = log;
  g->lost = false;
  int cmd[2], rep[2];
  if (pipe2(cmd, O_CLOEXEC) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "guardian pipe");
  if (pipe2(rep, O_CLOEXEC) < 0) {
    int err = errno;
    close(cmd[0]);
    close(cmd[1]);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "guardian pipe");
  }
  char maxs[32];
  snprintf(maxs, sizeof maxs, "%ld", pause_max_ms);
  char *argv[] = { "/proc/self/exe", "__guardian", (char *)uri, (char *)uuid, maxs,
                   log->debug ? "1" : "0", (char *)job->checkpoint, (char *)job->rundir,
                   (char *)job->scratchdir, (char *)job->point, NULL };
  /* The child gets the pipe ends at fixed numbers 3 and 4.  Our own ends
   * stay close-on-exec: a child we start later (qemu-img, a copier) must
   * not hold the command pipe open past our death. */
  _cleanup_close_ int c3 = fcntl(cmd[0], F_DUPFD, 10), c4 = fcntl(rep[1], F_DUPFD, 10);
  close(cmd[0]);
  close(rep[1]);
  g->cmd_fd = cmd[1];
  g->report_fd = rep[0];
  if (c3 < 0 || c4 < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "guardian pipe");
  int fds[] = { c3, c4 };
  g->pid = sp_spawn_fds(argv, NULL, fds, 2, e);
  return g->pid < 0 ? -1 : 0;
}

int guardian_wait_ready(struct guardian *g, struct sp_err *e)
{
  char c = 0;
  struct pollfd p = { .fd = g->report_fd, .events = POLLIN };
  int n;
  /* Its libvirt connection takes tens of ms; 10 s means libvirtd hangs. */
  while ((n = poll(&p, 1, 10000)) < 0 && errno == EINTR)
    ;
  if (n != 1 || read(g->report_fd, &c, 1) != 1 || c != MSG_READY) {
    guardian_stop(g);
    return sp_err_set(e, SP_EXIT_FAILED, "the guardian process did not start (it needs its own "
                      "libvirt connection); nothing was paused");
  }
  return 0;
}

void guardian_tell_paused(struct guardian *g) { tell(g, MSG_PAUSED); }
void guardian_tell_resumed(struct guardian *g) { tell(g, MSG_RESUMED); }
void guardian_tell_frozen(struct guardian *g) { tell(g, MSG_FROZEN); }
void guardian_tell_held(struct guardian *g) { tell(g, MSG_HELD); }
void guardian_tell_thawed(struct guardian *g) { tell(g, MSG_THAWED); }
void guardian_tell_begun(struct guardian *g) { tell(g, MSG_BEGUN); }
void guardian_tell_not_begun(struct guardian *g) { tell(g, MSG_NOT_BEGUN); }
void guardian_tell_ended(struct guardian *g) { tell(g, MSG_ENDED); }
void guardian_tell_published(struct guardian *g) { tell(g, MSG_PUBLISHED); }
void guardian_tell_started(struct guardian *g) { tell(g, MSG_STARTED); }
void guardian_tell_not_started(struct guardian *g) { tell(g, MSG_NOT_STARTED); }

bool guardian_overran(struct guardian *g, int wait_ms)
{
  struct pollfd p = { .fd = g->report_fd, .events = POLLIN };
  char c;
  while (poll(&p, 1, wait_ms) == 1 && (p.revents & POLLIN) && read(g->report_fd, &c, 1) == 1)
    if (c == MSG_OVERRUN)
      return true;
  return false;
}

void guardian_stop(struct guardian *g)
{
  if (g->cmd_fd >= 0) {
    send_byte(g->cmd_fd, MSG_QUIT);
    close(g->cmd_fd);
    g->cmd_fd = -1;
  }
  if (g->pid > 0) {
    while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    g->pid = -1;
  }
  if (g->report_fd >= 0) {
    close(g->report_fd);
    g->report_fd = -1;
  }
}

/* ---- the guardian process ------------------------------------------ */

struct watch {
  virDomainPtr dom;
  bool paused, frozen, begun, ended, started;
  bool held;  /* pause = off: the frozen span runs against the deadline */
  bool published; /* told the point is complete (any target kind) */
  const char *uuid;
  const char *checkpoint, *rundir, *scratchdir, *point;
  long long deadline;
  const struct sp_log *log;
};

/* Resumes if the VM is paused, and thaws if we froze it.  A coordinator
 * killed during virDomainSuspend may see libvirt finish the suspend after
 * we looked, so the state is watched for a short while. */
static void rescue(struct watch *w, const char *why)
{
  const char *name = virDomainGetName(w->dom);
  if (w->paused) {
    for (int i = 0; i < 10; i++) {
      int state = 0, reason;
      if (virDomainGetState(w->dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED) {
        if (virDomainResume(w->dom) == 0)
          sp_warn(w->log, "guardian: %s: resumed %s", why, name);
        else
          sp_error(w->log, "guardian: %s: cannot resume %s: %s", why, name,
                   virt_errmsg());
      }
      usleep(50 * 1000);
    }
    w->paused = false;
  }
  if (w->frozen) {
    int n = virDomainFSThaw(w->dom, NULL, 0, 0);
    if (n >= 0)
      sp_warn(w->log, "guardian: %s: thawed %d file system(s) of %s", why, n,
              name);
    else
      sp_error(w->log, "guardian: %s: cannot thaw %s: %s", why, name,
               virt_errmsg());
    w->frozen = false;
  }
}

/* The coordinator died: end the job (unless it had ended it) and drop the
 * checkpoint of a point that will never be complete (if the job began) -
 * but never the checkpoint of a point that was published before the
 * coordinator died - and remove the job's directories (made before we
 * started, whether it began or not).  "Published" is the coordinator's
 * word, after the rename or a Ceph pool's index commit alike; the local
 * final path also counts, for a death between the rename and that word. */
static void abandon_job(struct watch *w)
{
  if (w->begun && (w->published || (w->point[0] && sp_exists(w->point)))) {
    sp_info(w->log, "guardian: point %s is complete: its checkpoint stays",
            w->point[0] ? w->point : w->checkpoint);
    w->begun = false;
  }
  if (w->begun) {
    if (!w->ended && virDomainAbortJob(w->dom) == 0)
      sp_warn(w->log, "guardian: ended the backup job of %s", virDomainGetName(w->dom));
    for (int i = 0; i < 20; i++) {
      _cleanup_checkpoint_ virDomainCheckpointPtr cp =
        virDomainCheckpointLookupByName(w->dom, w->checkpoint, 0);
      if (!cp)
        break;
      if (virDomainCheckpointDelete(cp, 0) == 0) {
        sp_warn(w->log, "guardian: deleted checkpoint %s", w->checkpoint);
        break;
      }
      usleep(100 * 1000); /* the job may still be winding down */
    }
    w->begun = false;
  }
  struct sp_err ignored = { 0 };
  if (w->rundir[0])
    sp_rm_rf(w->rundir, &ignored);
  if (w->scratchdir[0])
    sp_rm_rf(w->scratchdir, &ignored);
}

/* The coordinator died while it held a shut-off VM started paused for an
 * offline point: stop it again, unless someone resumed it (their guest
 * now), and drop the hook's mark on this machine (a remote one's mark
 * ages out, offline_mark.h). */
static void stop_offline(struct watch *w)
{
  if (!w->started)
    return;
  int state = 0, reason;
  const char *name = virDomainGetName(w->dom);
  if (virDomainGetState(w->dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED) {
    if (virDomainDestroy(w->dom) == 0)
      sp_warn(w->log, "guardian: stopped %s, started paused for its offline backup", name);
    else
      sp_error(w->log, "guardian: cannot stop %s: %s; stop it with `virsh destroy %s`", name,
               virt_errmsg(), name);
  }
  w->started = false;
  _cleanup_free_ char *mark = sp_offline_mark_path(w->uuid);
  if (mark && w->rundir[0]) /* rundir is "" for a remote hypervisor */
    unlink(mark);
}

/* The domain handle to act on: connected again first if libvirtd
 * restarted since we last spoke to it. */
static virDomainPtr reach(struct virt_link *l, const struct sp_log *log)
{
  struct sp_err e = { 0 };
  if (virt_link_ensure(l, &e) < 0)
    sp_error(log, "%s", e.msg);
  return *l->dom;
}

int guardian_main(int argc, char **argv)
{
  if (argc != 9)
    return SP_EXIT_USAGE;
  struct sp_log log = { .prog = "stillpoint", .debug = strcmp(argv[4], "1") == 0 };
  /* Out of the coordinator's process group (a terminal's ^C must not take
   * us down with it) and deaf to polite signals: we leave when the
   * coordinator's pipe closes, after putting the VM right. */
  setpgid(0, 0);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  virt_quiet_errors();
  long max_ms = strtol(argv[3], NULL, 10);
  _cleanup_conn_ virConnectPtr conn = virConnectOpen(argv[1]);
  _cleanup_dom_ virDomainPtr dom = conn ? virDomainLookupByUUIDString(conn, argv[2]) : NULL;
  if (!dom) {
    sp_error(&log, "guardian: cannot reach domain %s: %s", argv[2], virt_errmsg());
    return SP_EXIT_FAILED;
  }
  /* libvirtd may restart while we watch (the VM lives on): before we act,
   * the connection is opened again if it was lost. */
  struct sp_err le = { 0 };
  struct virt_link link;
  if (virt_link_init(&link, &conn, &dom, argv[1], "guardian: ", &log, &le) < 0) {
    sp_error(&log, "guardian: %s", le.msg);
    return SP_EXIT_FAILED;
  }
  send_byte(REPORT_FD, MSG_READY);

  struct watch w = { .dom = dom, .deadline = -1, .log = &log, .uuid = argv[2], .checkpoint = argv[5],
                     .rundir = argv[6], .scratchdir = argv[7], .point = argv[8] };
  for (;;) {
    int timeout = -1;
    if (w.paused || (w.held && w.frozen)) {
      long long left = w.deadline - sp_now_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    struct pollfd p = { .fd = CMD_FD, .events = POLLIN };
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      w.dom = reach(&link, &log);
      rescue(&w, w.paused ? "the pause overran pause_max_ms"
                          : "the freeze overran pause_max_ms (pause = off)");
      w.held = false;
      send_byte(REPORT_FD, MSG_OVERRUN);
      continue;
    }
    char c;
    ssize_t n = read(CMD_FD, &c, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      w.dom = reach(&link, &log);
      rescue(&w, "the coordinator died");
      abandon_job(&w);
      stop_offline(&w);
      virt_link_free(&link);
      return SP_EXIT_OK;
    }
    switch (c) {
    case MSG_PAUSED:
      w.paused = true;
      w.deadline = sp_now_ms() + max_ms;
      break;
    case MSG_RESUMED: w.paused = false; break;
    case MSG_FROZEN: w.frozen = true; break;
    case MSG_HELD:
      /* From the freeze's answer to the thaw, as a pause is bounded from
       * the suspend: a stalled coordinator cannot keep the guest's file
       * systems frozen (its writes blocked) for longer. */
      w.held = true;
      w.deadline = sp_now_ms() + max_ms;
      break;
    case MSG_THAWED: w.frozen = w.held = false; break;
    case MSG_BEGUN: w.begun = true; break;
    case MSG_NOT_BEGUN: w.begun = false; break;
    case MSG_STARTED: w.started = true; break;
    case MSG_NOT_STARTED: w.started = false; break;
    case MSG_ENDED: w.ended = true; break;
    case MSG_PUBLISHED: w.published = true; break;
    case MSG_QUIT:
      if (w.paused || w.frozen)
        w.dom = reach(&link, &log);
      rescue(&w, "the coordinator left the VM paused or frozen");
      virt_link_free(&link);
      return SP_EXIT_OK;
    }
  }
}
