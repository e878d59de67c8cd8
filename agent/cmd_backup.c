/* stillpoint backup DOMAIN: one consistent backup point (docs/design.md,
 * "The backup point protocol").  run_point() reads as the protocol:
 *
 *   preflight -> plan -> prepare -> guardian -> freeze -> pause -> capture
 *   -> begin -> resume -> thaw -> save state -> copy -> end job -> finish
 *
 * Everything that can fail before the pause fails there (exit 3 for a
 * refusal); between pause and resume every error path resumes and thaws,
 * and the guardian does it if we cannot (invariant 1). */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_all.h"
#include "backup_run.h"
#include "cleanup.h"
#include "clock.h"
#include "commands.h"
#include "fsutil.h"
#include "prune.h"
#include "stale_job.h"
#include "test_knob.h"
#include "virt.h"

static const char usage[] =
  "usage: stillpoint backup DOMAIN|--all [--level auto|full|inc|diff]\n"
  "                         [--target DIR|rbd:POOL[/NAMESPACE]] [--only-offline]\n"
  "                         [-c URI] [--json] [--config FILE] [--set key=value]\n"
  "Takes one backup point of DOMAIN: disks, NVRAM and TPM state from one instant.\n"
  "--all: every VM whose policy says enabled = yes, max_parallel_vms at once.\n"
  "A shut-off VM gets an offline point (started paused, stopped again) unless\n"
  "offline = skip. --only-offline: refuse (exit 3) unless DOMAIN is shut off\n"
  "(what the hook's backup_on_stop runs).\n"
  "Exit: 0 done, 1 failed (the VM runs on; the point is left as <id>.partial),\n"
  "2 bad usage or configuration, 3 refused before the VM was touched.\n";

enum { OPT_LEVEL = 0x2000, OPT_TARGET, OPT_ALL, OPT_ONLY_OFFLINE };

struct backup_opts {
  const char *level;
  const char *target;
  bool all;
  bool only_offline;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct backup_opts *o = user;
  if (opt == OPT_LEVEL) {
    if (strcmp(arg, "auto") && strcmp(arg, "full") && strcmp(arg, "inc") && strcmp(arg, "diff"))
      return sp_err_set(e, SP_EXIT_USAGE, "--level %s: expected auto, full, inc or diff", arg);
    o->level = arg;
  } else if (opt == OPT_TARGET) {
    o->target = arg;
  } else if (opt == OPT_ALL) {
    o->all = true;
  } else if (opt == OPT_ONLY_OFFLINE) {
    o->only_offline = true;
  }
  return 0;
}

static void run_free(struct run *r)
{
  if (r->guardian_up)
    guardian_stop(&r->guardian);
  tunnel_close(&r->tunnel);
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
  if (r->dom)
    virDomainFree(r->dom);
  hypervisor_close(&r->hv);
}

/* ---- before the window ----------------------------------------------- */

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
  /* The lock first: held, no live run owns a backup job or checkpoint
   * of ours on this VM, and what a dead one left is cleaned up before
   * preflight looks (else "another job is running" forever). */
  struct sp_err le = { 0 };
  if (vm_lock_take(uuid, name, "backup", &r->lock, &le) == 0) {
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/%s", sp_config_str(&r->cfg, SP_KEY_TARGET), virDomainGetName(r->dom)) > 0)
      stale_job_clean(r->dom, uuid, dir, &r->hv.host, sp_config_str(&r->cfg, SP_KEY_SCRATCH_DIR),
                      r->log);
  }
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
  for (size_t i = 0; i < r->pf.nwarnings; i++)
    sp_warn(r->log, "%s", r->pf.warnings[i]);
  if (r->pf.nrefusals) {
    for (size_t i = 0; i + 1 < r->pf.nrefusals; i++)
      sp_error(r->log, "%s", r->pf.refusals[i]);
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s", r->pf.refusals[r->pf.nrefusals - 1]);
  }
  if (le.code) {
    *e = le;
    return -1;
  }
  /* A Ceph pool is shared by many hosts: the VM's lock there too, held
   * until the run ends, and what failed runs left removed under it. */
  if (r->rbd_on && (rbd_target_open(&r->rbd, &r->cfg, uuid, r->log, e) < 0 ||
                    rbd_target_lock(&r->rbd, "backup", e) < 0))
    return -1;
  return 0;
}

static int plan(struct run *r, const char *level_req, struct sp_err *e)
{
  /* A Ceph point's small files are staged in a private local directory
   * until they are uploaded. */
  if (r->rbd_on ? asprintf(&r->domain_dir, "%s/%.36s", SP_RBD_STAGING_DIR, r->pf.dom.uuid) < 0
                : asprintf(&r->domain_dir, "%s/%s", sp_config_str(&r->cfg, SP_KEY_TARGET),
                           r->pf.dom.name) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "plan");
  if (chain_plan_make(r->dom, r->domain_dir, r->rbd_on ? &r->rbd : NULL, &r->pf, &r->cfg,
                      level_req, r->log, &r->plan, e) < 0)
    return -1;
  if (r->plan.why_full)
    sp_warn(r->log, "taking a FULL point instead of %s: %s", level_req, r->plan.why_full);
  /* Ids are per second: never reuse one within the same second. */
  for (int tries = 0; tries < 3; tries++) {
    if (sp_point_id_make(time(NULL), r->plan.level, r->id) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "cannot form a point id");
    _cleanup_free_ char *p = NULL, *q = NULL;
    if (asprintf(&p, "%s/%s", r->domain_dir, r->id) < 0 ||
        asprintf(&q, "%s/%s%s", r->domain_dir, r->id, SP_PARTIAL_SUFFIX) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "plan");
    /* Checkpoint names are per domain, points per target: another
     * target's point of this second has taken the name already. */
    _cleanup_checkpoint_ virDomainCheckpointPtr cp =
      virDomainCheckpointLookupByName(r->dom, r->id, 0);
    bool taken = false;
    if (r->rbd_on && rbd_target_has_id(&r->rbd, r->id, &taken, e) < 0)
      return -1;
    if (!sp_exists(p) && !sp_exists(q) && !cp && !taken)
      return 0;
    sleep(1);
  }
  return sp_err_set(e, SP_EXIT_FAILED, "point %s exists already", r->id);
}

static int prepare(struct run *r, struct sp_err *e)
{
  struct backup_job *j = &r->job;
  j->disks = calloc(r->pf.ndisks ? r->pf.ndisks : 1, sizeof *j->disks);
  if (!j->disks || !(j->checkpoint = strdup(r->id)) ||
      (r->plan.parent_checkpoint && !(j->incremental = strdup(r->plan.parent_checkpoint))))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "job");
  for (size_t i = 0; i < r->pf.ndisks; i++) {
    const struct pf_disk *d = &r->pf.disks[i];
    struct job_disk *jd = &j->disks[j->ndisks++];
    jd->target = d->disk->target;
    jd->copy = !d->skip;
    jd->size = d->capacity;
    for (size_t k = 0; k < r->plan.ndisks; k++)
      if (r->plan.disks[k].pf == d) {
        jd->bitmap = r->plan.disks[k].bitmap;
        jd->full = strcmp(r->plan.disks[k].level, "full") == 0;
      }
  }
  /* The port is claimed before anything is made: a refusal leaves
   * nothing behind, and begin inside the pause finds it free. */
  if (sp_config_is(&r->cfg, SP_KEY_TRANSPORT, "tcp")) {
    if (nbd_tcp_pick(&r->tcp, &r->cfg, &r->hv.host, e) < 0)
      return -1;
    j->tcp = &r->tcp;
  }
  char tag[128];
  snprintf(tag, sizeof tag, "%.36s-%s", r->pf.dom.uuid, r->id);
  if (backup_job_prepare(j, &r->hv.host, &r->pf.qc, sp_config_str(&r->cfg, SP_KEY_SCRATCH_DIR), tag,
                         e) < 0 ||
      point_create(&r->pd, r->domain_dir, r->id, e) < 0)
    return -1;
  test_failpoint("prepare", -1);

  r->sigfd = task_pool_signalfd();
  if (r->sigfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "signalfd");

  /* The guardian removes the job's directories only on this machine. */
  _cleanup_free_ char *uri = r->hv.uri ? strdup(r->hv.uri) : virConnectGetURI(r->hv.conn);
  struct guardian_job gj = { .checkpoint = r->id,
                             .rundir = r->hv.host.remote ? "" : j->rundir,
                             .scratchdir = r->hv.host.remote ? "" : j->scratchdir,
                             .point = r->pd.final };
  /* A guardian that dies (OOM, an administrator) must not take us with
   * it at the next word we tell it: we resume and thaw ourselves. */
  signal(SIGPIPE, SIG_IGN);
  if (guardian_start(&r->guardian, uri ? uri : SP_DEFAULT_URI, r->pf.dom.uuid,
                     sp_config_int(&r->cfg, SP_KEY_PAUSE_MAX_MS), &gj, r->log, e) < 0)
    return -1;
  r->guardian_up = true;
  test_failpoint("guardian", r->guardian.pid);
  return 0;
}

/* ---- the window ------------------------------------------------------- */

static int window(struct run *r, struct sp_err *e)
{
  bool pause = sp_config_is(&r->cfg, SP_KEY_PAUSE, "on");
  pid_t gp = r->guardian.pid;
  if (freeze_guest(r->dom, &r->cfg, &r->pf, &r->guardian, &r->fz, r->log, e) < 0)
    return -1;
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
  if (window_close(r->dom, &r->guardian, &r->win, rc ? &e2 : e) < 0 && rc == 0)
    rc = -1;
  if (rc == 0)
    test_failpoint("resume", gp);
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

/* A failed job must leave no checkpoint that a later incremental would
 * build on (invariant 3). */
static void undo_checkpoint(struct run *r)
{
  struct sp_err e = { 0 };
  if (backup_job_end(r->dom, &r->job, &e) < 0)
    sp_error(r->log, "%s", e.msg);
  sp_err_clear(&e);
  if (checkpoint_delete(r->dom, r->id, &e) < 0)
    sp_error(r->log, "%s", e.msg);
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
            "%zu disk%s, %.1f MiB written, copy %.1f s", r->id, r->pf.dom.name, r->plan.level,
            r->off.left_running ? "resumed by someone meanwhile and left running" :
                                  "stopped again",
            r->m.ndisks, r->m.ndisks == 1 ? "" : "s", (double)bytes / 1048576.0, secs);
  else
    sp_info(r->log, "point %s of %s: %s, %zu disk%s, %.1f MiB written, copy %.1f s, VM paused "
            "%.0f ms%s", r->id, r->pf.dom.name, r->plan.level, r->m.ndisks,
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

/* Where a failed run's point is, for the user. */
static void left_behind(const struct run *r)
{
  if (r->rbd_on)
    sp_error(r->log, "point %s was not committed: nothing of it is visible, and the next backup "
             "or prune of %s removes what it left in the pool", r->id, r->pf.dom.name);
  else
    sp_error(r->log, "the point is left incomplete in %s", r->pd.partial);
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

/* From the offline start (if any) to the finish; t0: when the run began. */
static int take_point(struct run *r, double t0, struct sp_err *e)
{
  struct sp_manifest_timings *t = &r->m.timings;
  if (offline_begin(r, e) < 0)
    return -1;
  double t1 = phases_now();
  t->prepare_ms = t1 - t0;
  if (window(r, e) < 0) {
    undo_checkpoint(r);
    return -1;
  }
  double t2 = phases_now();
  t->window_ms = t2 - t1;
  pid_t gp = r->guardian.pid;
  int rc = backup_save_state(r, e);
  double t3 = phases_now();
  t->state_ms = t3 - t2;
  if (rc < 0 || backup_open_transport(r, e) < 0 || backup_copy_disks(r, e) < 0) {
    undo_checkpoint(r);
    left_behind(r);
    return -1;
  }
  double t4 = phases_now();
  t->copy_ms = t4 - t3;
  struct sp_err je = { 0 };
  tunnel_close(&r->tunnel);
  /* QEMU tears the job down while the images are hashed (backup_finish);
   * only the wait for it is counted here. */
  if (backup_job_abort(r->dom, &r->job, &je) < 0)
    sp_warn(r->log, "%s", je.msg);
  t->job_end_ms = phases_now() - t4;
  /* Asked to end, the job goes away by itself: nothing for the guardian
   * to abort if we die while hashing. */
  guardian_tell_ended(&r->guardian);
  test_failpoint("end-job", gp);
  int frc = backup_finish(r, e);
  double t5 = phases_now();
  sp_err_clear(&je);
  if (backup_job_end(r->dom, &r->job, &je) < 0)
    sp_warn(r->log, "%s", je.msg);
  r->tail.job_wait_ms = phases_now() - t5;
  if (frc < 0) {
    struct sp_err ce = { 0 };
    if (checkpoint_delete(r->dom, r->id, &ce) < 0)
      sp_error(r->log, "%s", ce.msg);
    left_behind(r);
    return -1;
  }
  test_failpoint("finish-after-rename", r->guardian.pid);
  return 0;
}

static int run_point(struct run *r, const char *name, const char *level_req, struct sp_err *e)
{
  double t0 = phases_now();
  if (preflight(r, name, e) < 0)
    return -1;
  test_failpoint("preflight", -1);
  if (plan(r, level_req, e) < 0)
    return -1;
  test_failpoint("plan", -1);
  if (prepare(r, e) < 0)
    return -1;
  int rc = take_point(r, t0, e);
  /* After the finish: a failed point's checkpoint is deleted while the VM
   * still runs.  Every path, signals included, stops what we started. */
  offline_stop(r->dom, &r->guardian, &r->off, r->log);
  if (rc < 0)
    return -1;
  /* The point is complete: nothing is left for the guardian to put
   * right, and a kill from here on (during prune) must cost nothing. */
  guardian_stop(&r->guardian);
  r->guardian_up = false;
  phases_log(r->log, &r->m, &r->tail, phases_now() - t0);
  report(r);
  /* Retention right after a good point, under the same lock. */
  long keep = sp_config_int(&r->cfg, SP_KEY_KEEP);
  struct sp_err pe = { 0 };
  test_failpoint("prune", -1);
  if (keep > 0 && r->rbd_on) {
    if (prune_rbd(r->dom, &r->rbd, keep, false, r->log, NULL, &pe) < 0)
      sp_warn(r->log, "the point is complete, but pruning failed: %s", pe.msg);
    return 0;
  }
  if (keep > 0 && prune_domain(r->dom, r->domain_dir, keep, false, r->log, NULL, &pe) < 0)
    sp_warn(r->log, "the point is complete, but pruning failed: %s", pe.msg);
  return 0;
}

int cmd_backup(int argc, char **argv)
{
  static const struct option opts[] = {
    { "level", required_argument, NULL, OPT_LEVEL },
    { "target", required_argument, NULL, OPT_TARGET },
    { "all", no_argument, NULL, OPT_ALL },
    { "only-offline", no_argument, NULL, OPT_ONLY_OFFLINE },
    { 0 },
  };
  struct cli c;
  struct backup_opts o = { 0 };
  struct sp_err e = { 0 };
  struct run r = { .sigfd = -1, .pd = { .fd = -1, .domain_fd = -1 }, .lock = { -1 }, .tunnel = { .pid = -1 },
                  .tcp = { .lock_fd = -1 } };
  int rc;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &o, usage, &e) < 0 ||
      ((o.all ? c.nargs != 0 : c.nargs != 1) &&
       sp_err_set(&e, SP_EXIT_USAGE, "backup needs one DOMAIN, or --all\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (o.all) {
    rc = backup_all(&c, o.level, o.target);
    goto out;
  }
  if (cli_load_config(&c, c.args[0], &r.cfg, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (o.target) {
    char *set = NULL;
    if (asprintf(&set, "target=%s", o.target) < 0 || sp_config_apply_set(&r.cfg, set, &e) < 0) {
      free(set);
      rc = cli_fail(&c, &e);
      goto out;
    }
    free(set);
  }
  r.cli = &c;
  r.log = &c.log;
  r.rbd_on = rbd_target_is(sp_config_str(&r.cfg, SP_KEY_TARGET));
  r.only_offline = o.only_offline;
  const char *level = o.level ? o.level : sp_config_str(&r.cfg, SP_KEY_LEVEL);
  rc = run_point(&r, c.args[0], level, &e) < 0 ? cli_fail(&c, &e) : SP_EXIT_OK;
out:
  run_free(&r);
  cli_free(&c);
  return rc;
}
