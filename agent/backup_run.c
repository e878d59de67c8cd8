/* stillpoint backup DOMAIN: one consistent backup point (docs/design.md,
 * "The backup point protocol").  run_point() reads as the protocol:
 *
 *   preflight -> plan -> prepare (job, port) -> signals -> guardian started
 *   -> scratch files, point -> guardian ready -> [offline start] -> freeze
 *   -> pause -> capture -> begin -> resume -> thaw -> save state -> copy
 *   -> end job -> finish -> prune
 *
 * Everything that can fail before the pause fails there (exit 3 for a
 * refusal); between pause and resume every error path resumes and thaws,
 * and the guardian does it if we cannot (invariant 1).  After that there
 * is one failure path, driven by what the run has made (struct run_made),
 * as libvirt's qemuBackupBegin has: the job ended, the checkpoint deleted,
 * the user told where the incomplete point is, an offline start undone.
 * cmd_backup.c only parses the arguments, as copier/main.c's options.c. */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_run.h"
#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "prune.h"
#include "stale_job.h"
#include "test_knob.h"
#include "virt.h"
#include "xalloc.h"

void run_free(struct run *r)
{
  if (r->guardian_up)
    guardian_stop(&r->guardian);
  remote_tunnel_close(&r->tunnel);
  if (r->local_rundir) {
    struct sp_err ignored = { 0 };
    sp_rm_rf(r->local_rundir, &ignored);
    free(r->local_rundir);
  }
  backup_job_free(&r->job);
  nbd_tcp_release(&r->tcp);
  captured_free(&r->cap);
  captured_free(&r->cap_before);
  point_dir_free(&r->pd);
  for (size_t i = 0; i < r->ntasks; i++)
    task_free(&r->tasks[i]);
  free(r->tasks);
  free(r->results);
  free(r->checkpoint_xml);
  free(r->inactive_xml);
  /* A Ceph point's files were staged here: uploaded, or named by the
   * run's intents in the pool. */
  if (r->rbd_on && r->domain_dir) {
    struct sp_err ignored = { 0 };
    sp_rm_rf(r->domain_dir, &ignored);
  }
  free(r->domain_dir);
  chain_plan_free(&r->plan);
  preflight_free(&r->pf);
  sp_manifest_free(&r->m);
  sp_config_free(&r->cfg);
  if (r->sigfd >= 0)
    close(r->sigfd);
  rbd_target_close(&r->rbd);
  vm_lock_release(&r->lock);
  virt_link_free(&r->link);
  if (r->dom)
    virDomainFree(r->dom);
  hypervisor_close(&r->hv);
}

/* libvirtd may have restarted since our last call (the VM and its backup
 * job live on): connected again before a step that must reach the VM.  If
 * it stays away, the step itself fails and says what to do. */
static void reach(struct run *r)
{
  struct sp_err e = { 0 };
  if (virt_link_ensure(&r->link, &e) < 0)
    sp_error(r->log, "%s", e.msg);
}

int backup_within_deadline(const struct run *r, const char *step, struct sp_err *e)
{
  long limit = sp_config_int(&r->cfg, SP_KEY_RUN_TIMEOUT_S);
  double took = phases_now() - r->t_start;
  if (limit <= 0 || took < (double)limit * 1000.0)
    return 0;
  return sp_err_set(e, SP_EXIT_FAILED, "the backup of %s passed its deadline, run_timeout_s = "
                    "%ld (%s), %s after %.0f s: it is stopped and fails; raise run_timeout_s "
                    "(0 = no limit) if its disks need longer, or find what slows the copy",
                    r->pf.dom.name, limit, r->cfg.source[SP_KEY_RUN_TIMEOUT_S], step,
                    took / 1000.0);
}

/* ---- before the window ----------------------------------------------- */

/* The lock first: held, no live run owns a backup job or checkpoint of
 * ours on this VM, and what a dead one left is cleaned up before preflight
 * looks (else "another job is running" forever).  Not taking it is not an
 * error yet: preflight() decides which of the two the user hears first. */
static void lock_and_clean(struct run *r, const char *uuid, struct sp_err *le)
{
  if (vm_lock_take(uuid, virDomainGetName(r->dom), "backup", &r->lock, le) < 0)
    return;
  _cleanup_free_ char *dir = NULL;
  if (asprintf(&dir, "%s/%s", sp_config_str(&r->cfg, SP_KEY_TARGET), virDomainGetName(r->dom)) > 0)
    stale_job_clean(r->dom, uuid, dir, &r->hv.host, sp_config_str(&r->cfg, SP_KEY_SCRATCH_DIR),
                    r->log);
}

/* The warnings said, every refusal but the last logged, the last one the
 * error (exit 3). */
static int say_refusals(const struct run *r, struct sp_err *e)
{
  const struct sp_strv *warnings = &r->pf.warnings, *refusals = &r->pf.refusals;
  for (size_t i = 0; i < warnings->n; i++)
    sp_warn(r->log, "%s", warnings->v[i]);
  if (!refusals->n)
    return 0;
  for (size_t i = 0; i + 1 < refusals->n; i++)
    sp_error(r->log, "%s", refusals->v[i]);
  return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s", refusals->v[refusals->n - 1]);
}

static int preflight(struct run *r, const char *name, struct sp_err *e)
{
  if (!sp_config_bool(&r->cfg, SP_KEY_ENABLED))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "backups of %s are disabled by policy (enabled = no, "
                      "%s); --set enabled=yes takes one anyway", name,
                      r->cfg.source[SP_KEY_ENABLED]);
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (hypervisor_open(&r->hv, r->cli, &r->cfg, e) < 0 ||
      virt_lookup(r->hv.conn, name, &r->dom, e) < 0 || virDomainGetUUIDString(r->dom, uuid) < 0)
    return -1;
  struct sp_err le = { 0 };
  lock_and_clean(r, uuid, &le);
  if (preflight_run(r->dom, &r->cfg, &r->hv.host, &r->pf, e) < 0)
    return -1;
  /* backup_on_stop's run: a VM started again since its stop is its
   * owner's, and a start must never be held up for a backup. */
  if (r->only_offline && !r->pf.offline)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is %s, not shut off (started again since it "
                      "stopped?): --only-offline takes no point of it", name,
                      virt_state_name(r->pf.state));
  /* A second run must name the first (exit 1) rather than report the
   * first one's backup job as a refusal; a user who cannot take the lock
   * at all hears the preflight's reasons first. */
  if (le.code && le.code != SP_EXIT_PREFLIGHT) {
    *e = le;
    return -1;
  }
  if (say_refusals(r, e) < 0)
    return -1;
  if (le.code) {
    *e = le;
    return -1;
  }
  /* A Ceph pool is shared by many hosts: the VM's lock there too, held
   * until the run ends, and what failed runs left removed under it. */
  if (r->rbd_on && (rbd_target_open(&r->rbd, &r->cfg, uuid, r->log, e) < 0 ||
                    rbd_target_lock(&r->rbd, "backup", e) < 0))
    return -1;
  /* A failed run's checkpoint stays when its commit's outcome was
   * unknown; the index has decided now that it was no point. */
  if (r->rbd_on)
    stale_checkpoints_drop(r->dom, &r->rbd.left_ids, r->log);
  return 0;
}

static int plan(struct run *r, struct sp_level_req level_req, struct sp_err *e)
{
  /* A Ceph point's small files are staged in a private local directory
   * until they are uploaded. */
  r->domain_dir = r->rbd_on ? sp_xasprintf("%s/%.36s", SP_RBD_STAGING_DIR, r->pf.dom.uuid)
                            : sp_xasprintf("%s/%s", sp_config_str(&r->cfg, SP_KEY_TARGET),
                                           r->pf.dom.name);
  if (chain_plan_make(r->dom, r->domain_dir, r->rbd_on ? &r->rbd : NULL, &r->pf, &r->cfg,
                      level_req, r->log, &r->plan, e) < 0)
    return -1;
  if (r->plan.why_full)
    sp_warn(r->log, "taking a FULL point instead of %s: %s", sp_level_req_name(level_req),
            r->plan.why_full);
  /* Ids are per second: never reuse one within the same second. */
  for (int tries = 0; tries < 3; tries++) {
    if (sp_point_id_make(time(NULL), r->plan.level, r->id) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "cannot form a point id");
    _cleanup_free_ char *p = sp_xasprintf("%s/%s", r->domain_dir, r->id);
    _cleanup_free_ char *q = sp_xasprintf("%s/%s%s", r->domain_dir, r->id, SP_PARTIAL_SUFFIX);
    /* Checkpoint names are per domain, points per target: another
     * target's point of this second has taken the name already. */
    _cleanup_checkpoint_ virDomainCheckpointPtr cp =
      virDomainCheckpointLookupByName(r->dom, r->id, 0);
    bool taken = false;
    if (r->rbd_on && rbd_target_has_id(&r->rbd, r->id, &taken, e) < 0)
      return -1;
    if (!sp_exists(p) && !sp_exists(q) && !cp && !taken)
      break;
    if (tries == 2)
      return sp_err_set(e, SP_EXIT_FAILED, "point %s exists already", r->id);
    sleep(1);
  }
  /* What failed or killed runs left (their locks are free) goes now, also
   * with keep = 0; a point another run is writing stays.  Only after our
   * id is chosen: a run killed this very second leaves job directories
   * under its id, which must not become ours. */
  struct sp_err pe = { 0 };
  if (!r->rbd_on && prune_stale_partials(r->domain_dir, r->log, &pe) < 0)
    sp_warn(r->log, "cannot remove what failed runs left: %s", pe.msg);
  return 0;
}

/* The job's disks as the plan chose them: which are copied, from which
 * bitmap, full or not. */
static int describe_job(struct run *r, struct sp_err *e)
{
  struct backup_job *j = &r->job;
  j->disks = sp_xcalloc(r->pf.ndisks ? r->pf.ndisks : 1, sizeof *j->disks);
  j->checkpoint = sp_xstrdup(r->id);
  if (r->plan.parent_checkpoint)
    j->incremental = sp_xstrdup(r->plan.parent_checkpoint);
  for (size_t i = 0; i < r->pf.ndisks; i++) {
    const struct pf_disk *d = &r->pf.disks[i];
    struct job_disk *jd = &j->disks[j->ndisks++];
    jd->target = d->disk->target;
    jd->copy = !d->skip;
    jd->size = d->capacity;
    for (size_t k = 0; k < r->plan.ndisks; k++)
      if (r->plan.disks[k].pf == d) {
        jd->bitmap = r->plan.disks[k].bitmap;
        jd->full = r->plan.disks[k].level == SP_LEVEL_FULL;
      }
  }
  return 0;
}

/* The port is claimed before anything is made: a refusal leaves nothing
 * behind, and begin inside the pause finds it free. */
static int claim_port(struct run *r, struct sp_err *e)
{
  if (!sp_config_is(&r->cfg, SP_KEY_TRANSPORT, "tcp"))
    return 0;
  if (nbd_tcp_pick(&r->tcp, &r->cfg, &r->hv.host, e) < 0)
    return -1;
  r->job.tcp = &r->tcp;
  return 0;
}

/* The job's directories on the hypervisor and its XML documents. */
static int make_job(struct run *r, struct sp_err *e)
{
  char tag[128];
  snprintf(tag, sizeof tag, "%.36s-%s", r->pf.dom.uuid, r->id);
  return backup_job_prepare(&r->job, &r->hv.host, &r->pf.qc,
                            sp_config_str(&r->cfg, SP_KEY_SCRATCH_DIR), tag, e);
}

/* The point's <id>.partial directory: from here a failure leaves it
 * behind. */
static int make_point(struct run *r, struct sp_err *e)
{
  if (point_create(&r->pd, r->domain_dir, r->id, e) < 0)
    return -1;
  r->made.point = true;
  return 0;
}

/* SIGINT/SIGTERM read from a descriptor from here on: the copy stops its
 * copiers and the failure path below runs, rather than dying mid-step. */
static int watch_signals(struct run *r, struct sp_err *e)
{
  r->sigfd = task_pool_signalfd();
  if (r->sigfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "signalfd");
  return 0;
}

/* The guardian: a separate process that resumes, thaws and ends the job
 * if we die (docs/design.md, "Failures survived").  It removes the job's
 * directories only on this machine.  Started here, waited for in
 * guardian_ready(): its start overlaps the scratch files' creation. */
static int spawn_guardian(struct run *r, struct sp_err *e)
{
  _cleanup_free_ char *uri = r->hv.uri ? strdup(r->hv.uri) : virConnectGetURI(r->hv.conn);
  /* The point's final path, as point_create() names it: made after this. */
  _cleanup_free_ char *point = sp_xasprintf("%s/%s", r->domain_dir, r->id);
  struct guardian_job gj = { .checkpoint = r->id,
                             .rundir = r->hv.host.remote ? "" : r->job.rundir,
                             .scratchdir = r->hv.host.remote ? "" : r->job.scratchdir,
                             .point = point };
  /* A guardian that dies (OOM, an administrator) must not take us with
   * it at the next word we tell it: we resume and thaw ourselves. */
  signal(SIGPIPE, SIG_IGN);
  if (virt_link_init(&r->link, &r->hv.conn, &r->dom, uri, "", r->log, e) < 0)
    return -1;
  r->t_guardian = phases_now();
  if (guardian_spawn(&r->guardian, uri ? uri : SP_DEFAULT_URI, r->pf.dom.uuid,
                     sp_config_int(&r->cfg, SP_KEY_PAUSE_MAX_MS), &gj, r->log, e) < 0)
    return -1;
  /* Stopped by run_free() on every path from here, ready or not. */
  r->guardian_up = true;
  return 0;
}

/* The scratch files, made while the guardian starts (it is the slower of
 * the two: docs/facts.md, "Timings"). */
static int make_scratches(struct run *r, struct sp_err *e)
{
  return backup_job_make_scratches(&r->job, e);
}

static int guardian_ready(struct run *r, struct sp_err *e)
{
  double t = phases_now();
  if (guardian_wait_ready(&r->guardian, e) < 0) {
    r->guardian_up = false;
    return -1;
  }
  sp_debug(r->log, "guardian: ready %.0f ms after its start, %.0f ms of them waited for",
           phases_now() - r->t_guardian, phases_now() - t);
  return 0;
}

/* A shut-off VM: its NVRAM and TPM state as they are, then the start,
 * paused (docs/design.md, "Offline points"). */
static int offline_begin(struct run *r, struct sp_err *e)
{
  if (!r->pf.offline)
    return 0;
  if (capture_state(&r->hv.host, &r->pf, &r->cap_before, e) < 0)
    return -1;
  return offline_start(r->dom, &r->hv.host, r->pf.dom.uuid, &r->guardian, &r->off, e);
}

/* ---- the window ------------------------------------------------------- */

static int window(struct run *r, struct sp_err *e)
{
  bool pause = sp_config_is(&r->cfg, SP_KEY_PAUSE, "on");
  pid_t gp = r->guardian.pid;
  if (freeze_guest(r->dom, &r->cfg, &r->pf, &r->guardian, &r->fz, r->log, e) < 0)
    return -1;
  /* pause = off: only the freeze holds the guest still, and pause_max_ms
   * bounds it as it bounds a pause, kept by the guardian from here to the
   * thaw so that a stalled run cannot leave the guest's writes blocked. */
  if (!pause && r->fz.frozen)
    guardian_tell_held(&r->guardian);
  test_failpoint("freeze", gp);
  long long t0 = sp_now_ms(), t1 = 0, t2 = 0, t3 = 0;
  int rc = window_open(r->dom, &r->guardian, pause, &r->win, e);
  t1 = sp_now_ms();
  if (rc == 0) {
    test_failpoint("pause", gp);
    rc = capture_state(&r->hv.host, &r->pf, &r->cap, e);
  }
  if (rc == 0 && r->pf.offline)
    rc = offline_same_state(&r->cap_before, &r->cap, e);
  t2 = sp_now_ms();
  if (rc == 0) {
    test_failpoint("capture", gp);
    guardian_tell_begun(&r->guardian);
    /* Asked for, the checkpoint may exist even if begin reports failure. */
    r->made.checkpoint = true;
    reach(r);
    rc = backup_job_begin(r->dom, &r->job, e);
    if (rc < 0)
      guardian_tell_not_begun(&r->guardian);
  }
  t3 = sp_now_ms();
  if (rc == 0)
    test_failpoint("begin", gp);
  if (rc == 0)
    test_knob_sleep("STILLPOINT_TEST_WINDOW_DELAY_MS"); /* stretches the window */
  /* Every path out of here resumes and thaws; the first error is kept. */
  struct sp_err e2 = { 0 };
  reach(r);
  if (window_close(r->dom, &r->guardian, &r->win, rc ? &e2 : e) < 0 && rc == 0)
    rc = -1;
  if (rc == 0)
    test_failpoint("resume", gp);
  reach(r);
  if (thaw_guest(r->dom, &r->guardian, &r->fz, r->log, rc ? &e2 : e) < 0 && rc == 0)
    rc = -1;
  if (rc == 0)
    test_failpoint("thaw", gp);
  if (e2.code)
    sp_error(r->log, "%s", e2.msg);
  sp_debug(r->log, "window: suspend %lld ms, capture %lld ms (%d TPM reads), begin %lld ms, "
           "resume %lld ms", t1 - t0, t2 - t1, r->cap.tpm_stats.reads, t3 - t2,
           r->win.t_close - t3);
  return rc;
}

/* ---- after the window ------------------------------------------------- */

/* QEMU tears the job down while the images are hashed (backup_finish);
 * only the wait for the abort is counted here.  Asked to end, the job goes
 * away by itself: nothing for the guardian to abort if we die while
 * hashing. */
static void end_job(struct run *r)
{
  struct sp_err je = { 0 };
  double t = phases_now();
  remote_tunnel_close(&r->tunnel);
  reach(r);
  if (backup_job_abort(r->dom, &r->job, &je) < 0)
    sp_warn(r->log, "%s", je.msg);
  r->m.timings.job_end_ms = phases_now() - t;
  guardian_tell_ended(&r->guardian);
  test_failpoint("end-job", r->guardian.pid);
}

/* The wait until libvirt has torn the job down, after the finish. */
static void wait_job_gone(struct run *r)
{
  struct sp_err je = { 0 };
  double t = phases_now();
  reach(r);
  if (backup_job_end(r->dom, &r->job, &je) < 0)
    sp_warn(r->log, "%s", je.msg);
  r->tail.job_wait_ms = phases_now() - t;
}

static void report(const struct run *r)
{
  unsigned long long bytes = 0;
  double secs = 0;
  for (size_t i = 0; i < r->m.ndisks; i++) {
    bytes += r->m.disks[i].bytes_written;
    if (r->m.disks[i].seconds > secs)
      secs = r->m.disks[i].seconds;
  }
  if (r->pf.offline)
    sp_info(r->log, "point %s of %s: %s, offline (shut off; started paused for the job, %s), "
            "%zu disk%s, %.1f MiB written, copy %.1f s", r->id, r->pf.dom.name,
            sp_level_name(r->plan.level),
            r->off.left_running ? "resumed by someone meanwhile and left running" :
                                  "stopped again",
            r->m.ndisks, r->m.ndisks == 1 ? "" : "s", (double)bytes / 1048576.0, secs);
  else
    sp_info(r->log, "point %s of %s: %s, %zu disk%s, %.1f MiB written, copy %.1f s, VM paused "
            "%.0f ms%s", r->id, r->pf.dom.name, sp_level_name(r->plan.level), r->m.ndisks,
            r->m.ndisks == 1 ? "" : "s", (double)bytes / 1048576.0, secs, r->m.window.pause_ms,
            r->m.window.paused ? "" : " (it was not running: not paused by stillpoint)");
  _cleanup_free_ char *name = r->rbd_on ? rbd_target_point_name(&r->rbd, r->id) : NULL;
  const char *where = name ? name : r->pd.final;
  sp_info(r->log, "point: %s", where);
  if (r->cli->json) {
    _cleanup_free_ char *json = NULL;
    struct sp_err e = { 0 };
    if (sp_manifest_to_json(&r->m, &json, &e) == 0) {
      json_object *o = json_tokener_parse(json);
      json_object_object_add(o, "path", json_object_new_string(where));
      puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
      json_object_put(o);
    }
  }
}

/* Retention right after a good point, under the same lock; a failure
 * there does not make the point less complete. */
static void prune_after(struct run *r)
{
  long keep = sp_config_int(&r->cfg, SP_KEY_KEEP);
  struct sp_err pe = { 0 };
  test_failpoint("prune", -1);
  if (keep <= 0)
    return;
  reach(r);
  int rc = r->rbd_on ? prune_rbd(r->dom, &r->rbd, keep, false, r->log, NULL, &pe)
                     : prune_domain(r->dom, r->domain_dir, keep, false, r->log, NULL, &pe);
  if (rc < 0)
    sp_warn(r->log, "the point is complete, but pruning failed: %s", pe.msg);
}

/* The one failure path, from what the run has made.  A failed job must
 * leave no checkpoint that a later incremental would build on (invariant
 * 3); it is deleted while an offline VM still runs; the user learns where
 * the incomplete point is, wherever the run failed after making it. */
static void undo(struct run *r)
{
  struct sp_err e = { 0 };
  reach(r);
  if (r->made.checkpoint) {
    if (backup_job_end(r->dom, &r->job, &e) < 0)
      sp_error(r->log, "%s", e.msg);
    sp_err_clear(&e);
    /* A point that may be committed keeps its checkpoint (the error says
     * so): the next run builds on it or deletes it, from the index. */
    if (!r->made.maybe_point && checkpoint_delete(r->dom, r->id, &e) < 0)
      sp_error(r->log, "%s", e.msg);
  }
  /* Paused on an I/O error while the job ran (a full scratch_dir): the
   * job is gone now, so is its filter, and the guest's writes go through
   * again. */
  if (r->paused_on_error) {
    const char *vm = virDomainGetName(r->dom);
    if (virDomainResume(r->dom) == 0)
      sp_warn(r->log, "resumed %s, paused on an I/O error while the backup job ran", vm);
    else
      sp_error(r->log, "cannot resume %s, paused on an I/O error: %s; resume it with `virsh "
               "resume %s` once the cause is gone", vm, virt_errmsg(), vm);
  }
  if (r->made.point && !r->made.maybe_point) {
    if (r->rbd_on)
      sp_error(r->log, "point %s was not committed: nothing of it is visible, and the next "
               "backup or prune of %s removes what it left in the pool", r->id, r->pf.dom.name);
    else
      sp_error(r->log, "the point is left incomplete in %s", r->pd.partial);
  }
  if (r->dom)
    offline_stop(r->dom, &r->guardian, &r->off, r->log);
}

int run_point(struct run *r, const char *name, struct sp_level_req level_req, struct sp_err *e)
{
  struct sp_manifest_timings *t = &r->m.timings;
  double t1 = 0, t2 = 0, t3 = 0;
  int frc = 0;
  r->t_start = phases_now();
  if (preflight(r, name, e) < 0)
    goto fail;
  test_failpoint("preflight", -1);
  if (plan(r, level_req, e) < 0)
    goto fail;
  test_failpoint("plan", -1);
  if (describe_job(r, e) < 0 || claim_port(r, e) < 0 || make_job(r, e) < 0 ||
      watch_signals(r, e) < 0 || spawn_guardian(r, e) < 0 || make_scratches(r, e) < 0 ||
      make_point(r, e) < 0)
    goto fail;
  test_failpoint("prepare", -1);
  if (guardian_ready(r, e) < 0)
    goto fail;
  test_failpoint("guardian", r->guardian.pid);
  if (offline_begin(r, e) < 0)
    goto fail;
  t1 = phases_now();
  t->prepare_ms = t1 - r->t_start;
  /* Never a pause for a run that is out of time already. */
  if (backup_within_deadline(r, "before the pause", e) < 0 || window(r, e) < 0)
    goto fail;
  t2 = phases_now();
  t->window_ms = t2 - t1;
  frc = backup_save_state(r, e);
  t3 = phases_now();
  t->state_ms = t3 - t2;
  if (frc < 0 || backup_within_deadline(r, "before the copy", e) < 0 ||
      backup_open_transport(r, e) < 0 || backup_copy_disks(r, e) < 0)
    goto fail;
  t->copy_ms = phases_now() - t3;
  end_job(r);
  frc = backup_finish(r, e);
  wait_job_gone(r);
  if (frc < 0)
    goto fail;
  test_failpoint("finish-after-rename", r->guardian.pid);
  /* After the finish, while the VM still runs for an offline point.
   * Every path, signals included, stops what we started. */
  reach(r);
  offline_stop(r->dom, &r->guardian, &r->off, r->log);
  /* The point is complete: nothing is left for the guardian to put
   * right, and a kill from here on (during prune) must cost nothing. */
  guardian_stop(&r->guardian);
  r->guardian_up = false;
  phases_log(r->log, &r->m, &r->tail, phases_now() - r->t_start);
  report(r);
  prune_after(r);
  return 0;
fail:
  undo(r);
  return -1;
}
