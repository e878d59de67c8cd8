/* The copy step of a backup point: the job's NBD export brought within the
 * copier's reach, then `copier` run once per disk (docs/design.md, "The
 * copier contract"). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_run.h"
#include "cleanup.h"
#include "copier_contract.h"
#include "copy_parallel.h"
#include "fsutil.h"
#include "host.h"
#include "own_dirs.h"
#include "test_knob.h"
#include "xalloc.h"

/* The directories holding this program and, in a build tree, the copier:
 * the default copier is found there before $PATH.  NULL (errno set) when
 * /proc/self/exe cannot be read. */
static char *copier_path(void)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return NULL;
  exe[n] = '\0';
  const char *dir = dirname(exe);
  const char *old = getenv("PATH");
  return sp_xasprintf("%s:%s/../copier:%s", dir, dir,
                      old ? old : "/usr/local/bin:/usr/bin:/bin");
}

/* ", image sha256 HEX" ending the line: 64 lowercase hex digits. */
static bool image_sha(const char *line, char out[SP_SHA256_HEX_LEN + 1])
{
  static const char tag[] = ", image sha256 ";
  const char *p = strstr(line, tag);
  if (!p)
    return false;
  p += sizeof tag - 1;
  size_t n = strspn(p, "0123456789abcdef");
  if (n != SP_SHA256_HEX_LEN || (p[n] && p[n] != '\n'))
    return false;
  memcpy(out, p, n);
  out[n] = '\0';
  return true;
}

/* stillpoint-copy's last line: "...: done: read R written W zeroed Z bytes in ...
 * [, image sha256 HEX]"; any other copier's lines are only forwarded. */
static void copier_line(struct task *t, const char *line)
{
  struct copy_result *res = t->user;
  const char *p = strstr(line, "done: read ");
  unsigned long long rd, w, z;
  if (p && sscanf(p, "done: read %llu written %llu zeroed %llu", &rd, &w, &z) == 3) {
    res->bytes_written = w;
    res->have_bytes = true;
    if (!image_sha(p, res->sha256))
      res->sha256[0] = '\0';
  }
}

/* The copy is under way (a copier runs, the export is open). */
static void copier_started(struct task *t)
{
  const struct copy_result *res = t->user;
  test_failpoint("copy", res->guardian);
}

/* A remote job's NBD socket, forwarded to a private local one; with
 * transport = tcp the copier connects to the hypervisor itself. */
int backup_open_transport(struct run *r, struct sp_err *e)
{
  if (!r->hv.host.remote || r->job.tcp)
    return 0;
  char tag[128];
  snprintf(tag, sizeof tag, "%s/%.36s-%s.local", SP_RUN_DIR, r->pf.dom.uuid, r->id);
  if (sp_dirs_prepare_local(SP_RUN_DIR, 0711, e) < 0)
    return -1;
  r->local_rundir = sp_xstrdup(tag);
  if (mkdir(r->local_rundir, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", r->local_rundir);
  _cleanup_free_ char *local = sp_path_join(r->local_rundir, "nbd.sock");
  return remote_tunnel_open(&r->tunnel, &r->hv.target, local, r->job.socket, e);
}

/* The URI the copier reads a disk from: the job's socket or TLS port, or
 * the local end of the tunnel to the socket. */
static char *disk_uri(const struct run *r, const char *target)
{
  if (!r->hv.host.remote || r->job.tcp)
    return backup_job_uri(&r->job, target);
  return sp_xasprintf("nbd+unix:///%s?socket=%s", target, r->tunnel.local);
}

/* Where the copier writes a disk: a file of the point, or for a Ceph
 * target the snapshot ID of the chain's image (a new image for a full). */
static char *disk_output(const struct run *r, const struct disk_plan *dp, char **image)
{
  *image = NULL;
  if (!r->rbd_on) {
    char rel[300];
    snprintf(rel, sizeof rel, SP_POINT_DISK_FMT, dp->pf->disk->target);
    return point_path(&r->pd, rel);
  }
  *image = dp->rbd_image ? sp_xstrdup(dp->rbd_image)
                         : sp_rados_image_name(r->pf.dom.uuid, dp->pf->disk->target, r->id);
  return *image ? rbd_target_spec(&r->rbd, *image, r->id) : NULL;
}

/* Before a copier creates anything in the pool, the run's intents name
 * it: an image for a full disk, the snapshot for every disk. */
/* "@IMAGE" or "@IMAGE@SNAP". */
static char *intent_item(const char *image, const char *snap)
{
  return sp_xasprintf("@%s%s%s", image, snap ? "@" : "", snap ? snap : "");
}

static int intend_disks(struct run *r, struct sp_err *e)
{
  size_t n = r->plan.ndisks, k = 0;
  char **items = sp_xcalloc(2 * n + 1, sizeof *items);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct disk_plan *dp = &r->plan.disks[i];
    _cleanup_free_ char *image = NULL;
    _cleanup_free_ char *out = disk_output(r, dp, &image);
    /* NULL only when the image's name cannot be formed from the disk's. */
    if (!out) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "disk %s: no RBD image name can be formed from it",
                      dp->pf->disk->target);
      break;
    }
    if (!dp->rbd_image)
      items[k++] = intent_item(image, NULL);
    items[k++] = intent_item(image, r->id);
  }
  if (rc == 0)
    rc = rbd_target_intend(&r->rbd, r->id, (const char *const *)items, k, e);
  for (size_t i = 0; i < k; i++)
    free(items[i]);
  free(items);
  return rc;
}

/* While the job runs, QEMU's copy-before-write filter saves each block the
 * guest overwrites into the scratch file first; when it cannot (a full
 * scratch_dir), the guest's write fails and the disk's error policy pauses
 * the VM.  Nobody else is watching: the copy stops at once, and the
 * failure path aborts the job (which drops the filter) and resumes it. */
static int paused_on_error(struct run *r, struct sp_err *e)
{
  int state = 0, reason = 0;
  if (virDomainGetState(r->dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_PAUSED ||
      reason != VIR_DOMAIN_PAUSED_IOERROR)
    return 0;
  r->paused_on_error = true;
  return sp_err_set(e, SP_EXIT_FAILED, "%s was paused on an I/O error during the copy (a full "
                    "scratch_dir %s? the backup job saves there what the guest overwrites): the "
                    "copy is stopped, the job aborted and the VM resumed; free space in "
                    "scratch_dir or point it at a bigger file system",
                    r->pf.dom.name, sp_config_str(&r->cfg, SP_KEY_SCRATCH_DIR));
}

/* Every every_ms while the copiers run: the VM not paused on an I/O
 * error, the run within run_timeout_s.  Either failing stops the copiers
 * and sends the run down its failure path. */
static int copy_watch(void *user, struct sp_err *e)
{
  struct run *r = user;
  if (backup_within_deadline(r, "while copying", e) < 0 || paused_on_error(r, e) < 0) {
    r->watch_stopped = true;
    return -1;
  }
  return 0;
}

/* parallel as the policy says it, auto decided from the plan's levels. */
static long copiers_at_once(const struct run *r)
{
  size_t n = r->plan.ndisks;
  _cleanup_free_ enum sp_level *levels = sp_xcalloc(n ? n : 1, sizeof *levels);
  for (size_t i = 0; i < n; i++)
    levels[i] = r->plan.disks[i].level;
  return copy_parallel(sp_config_int(&r->cfg, SP_KEY_PARALLEL), levels, n);
}

int backup_copy_disks(struct run *r, struct sp_err *e)
{
  size_t n = r->plan.ndisks ? r->plan.ndisks : 1;
  r->tasks = sp_xcalloc(n, sizeof *r->tasks);
  r->results = sp_xcalloc(n, sizeof *r->results);
  _cleanup_free_ char *path = copier_path();
  if (!path)
    return sp_err_sys(e, SP_EXIT_FAILED, errno ? errno : EIO, "cannot read /proc/self/exe");
  const char *copier = sp_config_str(&r->cfg, SP_KEY_COPIER);
  char stall[32];
  snprintf(stall, sizeof stall, "%ld", sp_config_int(&r->cfg, SP_KEY_STALL_TIMEOUT_S));
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    const struct disk_plan *dp = &r->plan.disks[i];
    const char *t = dp->pf->disk->target;
    struct task *task = &r->tasks[r->ntasks];
    task->label = t;
    task->on_line = copier_line;
    task->on_start = copier_started;
    r->results[r->ntasks].guardian = r->guardian.pid;
    task->user = &r->results[r->ntasks++];
    char size[32], timeout[16];
    snprintf(size, sizeof size, "%llu", dp->pf->capacity);
    _cleanup_free_ char *uri = disk_uri(r, t);
    _cleanup_free_ char *image = NULL;
    _cleanup_free_ char *out = disk_output(r, dp, &image);
    _cleanup_free_ char *bitmap = NULL;
    if (dp->level != SP_LEVEL_FULL)
      bitmap = sp_xasprintf("qemu:dirty-bitmap:backup-%s", t);
    if (!out)
      return sp_err_set(e, SP_EXIT_FAILED, "disk %s: no RBD image name can be formed from it", t);
    /* The command goes through the shell as the policy wrote it; every
     * value it needs is in the environment, never in the string. */
    argv_add(&task->argv, "/bin/sh");
    argv_add(&task->argv, "-c");
    argv_add(&task->argv, copier);
    env_add(&task->env, SP_ENV_NBD_URI, uri);
    env_add(&task->env, SP_ENV_DISK, t);
    env_add(&task->env, SP_ENV_DISK_SIZE, size);
    env_add(&task->env, SP_ENV_LEVEL, sp_level_name(dp->level));
    env_add(&task->env, SP_ENV_BITMAP, bitmap);
    env_add(&task->env, SP_ENV_OUTPUT, out);
    env_add(&task->env, SP_ENV_PARENT_OUTPUT, dp->parent_image);
    env_add(&task->env, SP_ENV_POINT_DIR, r->pd.partial);
    env_add(&task->env, SP_ENV_DOMAIN, r->pf.dom.name);
    env_add(&task->env, SP_ENV_DOMAIN_UUID, r->pf.dom.uuid);
    env_add(&task->env, SP_ENV_CHECKPOINT, r->id);
    env_add(&task->env, SP_ENV_STALL_TIMEOUT_S, stall);
    env_add(&task->env, "PATH", path);
    if (r->rbd_on) {
      env_add(&task->env, SP_ENV_CEPH_CONF,
              rbd_target_env(&r->rbd, "conf", timeout, sizeof timeout));
      env_add(&task->env, SP_ENV_CEPH_USER,
              rbd_target_env(&r->rbd, "user", timeout, sizeof timeout));
      env_add(&task->env, SP_ENV_CEPH_KEYRING,
              rbd_target_env(&r->rbd, "keyring", timeout, sizeof timeout));
      env_add(&task->env, SP_ENV_CEPH_TIMEOUT,
              rbd_target_env(&r->rbd, "timeout", timeout, sizeof timeout));
    }
  }
  if (r->rbd_on && intend_disks(r, e) < 0)
    return -1;
  int signo;
  char via[300] = "";
  if (r->job.tcp)
    snprintf(via, sizeof via, " over NBD TLS from %s port %d", r->tcp.host, r->tcp.port);
  long at_once = copiers_at_once(r);
  sp_info(r->log, "copying %zu disk%s of %s (%s point %s)%s", r->ntasks,
          r->ntasks == 1 ? "" : "s", r->pf.dom.name, sp_level_name(r->plan.level), r->id, via);
  sp_debug(r->log, "%ld copier%s at once (parallel = %s)", at_once, at_once == 1 ? "" : "s",
           sp_config_str(&r->cfg, SP_KEY_PARALLEL));
  struct pool_watch watch = { .every_ms = 500, .check = copy_watch, .user = r };
  if (task_pool_run_watched(r->tasks, r->ntasks, at_once, true, r->sigfd, &watch, r->log, &signo,
                            e) < 0)
    return r->watch_stopped ? -1 : sp_err_prefix(e, signo ? "while copying" : "the copier");
  /* In Ceph the copier's exit 0 means its snapshot exists (the contract). */
  for (size_t i = 0; !r->rbd_on && i < r->ntasks; i++) {
    char rel[300];
    snprintf(rel, sizeof rel, SP_POINT_DISK_FMT, r->tasks[i].label);
    _cleanup_free_ char *out = point_path(&r->pd, rel);
    if (!out || !sp_exists(out))
      return sp_err_set(e, SP_EXIT_FAILED, "the copier exited 0 for %s but wrote no %s",
                        r->tasks[i].label, out ? out : rel);
  }
  return 0;
}
