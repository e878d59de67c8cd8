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
#include "fsutil.h"
#include "host.h"
#include "own_dirs.h"
#include "test_knob.h"

/* The directories holding this program and, in a build tree, the copier:
 * the default copier is found there before $PATH. */
static char *copier_path(void)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return NULL;
  exe[n] = '\0';
  const char *dir = dirname(exe);
  const char *old = getenv("PATH");
  char *p = NULL;
  if (asprintf(&p, "%s:%s/../copier:%s", dir, dir,
               old ? old : "/usr/local/bin:/usr/bin:/bin") < 0)
    return NULL;
  return p;
}

/* stillpoint-copy's last line: "...: done: read R written W zeroed Z bytes in ...";
 * any other copier's lines are only forwarded. */
static void copier_line(struct task *t, const char *line)
{
  struct copy_result *res = t->user;
  const char *p = strstr(line, "done: read ");
  unsigned long long rd, w, z;
  if (p && sscanf(p, "done: read %llu written %llu zeroed %llu", &rd, &w, &z) == 3) {
    res->bytes_written = w;
    res->have_bytes = true;
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
  if (sp_dirs_prepare_local(SP_RUN_DIR, 0711, e) < 0 || !(r->local_rundir = strdup(tag)))
    return -1;
  if (mkdir(r->local_rundir, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", r->local_rundir);
  _cleanup_free_ char *local = sp_path_join(r->local_rundir, "nbd.sock");
  return local ? tunnel_open(&r->tunnel, &r->hv.target, local, r->job.socket, e)
               : sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "tunnel");
}

/* The URI the copier reads a disk from: the job's socket or TLS port, or
 * the local end of the tunnel to the socket. */
static char *disk_uri(const struct run *r, const char *target)
{
  char *u = NULL;
  if (!r->hv.host.remote || r->job.tcp)
    return backup_job_uri(&r->job, target);
  return asprintf(&u, "nbd+unix:///%s?socket=%s", target, r->tunnel.local) < 0 ? NULL : u;
}

/* Where the copier writes a disk: a file of the point, or for a Ceph
 * target the snapshot ID of the chain's image (a new image for a full). */
static char *disk_output(const struct run *r, const struct disk_plan *dp, char **image)
{
  *image = NULL;
  if (!r->rbd_on) {
    char rel[300];
    snprintf(rel, sizeof rel, "disks/%s.qcow2", dp->pf->disk->target);
    return point_path(&r->pd, rel);
  }
  *image = dp->rbd_image ? strdup(dp->rbd_image)
                         : sp_rados_image_name(r->pf.dom.uuid, dp->pf->disk->target, r->id);
  return *image ? rbd_target_spec(&r->rbd, *image, r->id) : NULL;
}

/* Before a copier creates anything in the pool, the run's intents name
 * it: an image for a full disk, the snapshot for every disk. */
/* "@IMAGE" or "@IMAGE@SNAP", NULL when out of memory (asprintf leaves
 * its pointer undefined then). */
static char *intent_item(const char *image, const char *snap)
{
  char *s = NULL;
  if (asprintf(&s, "@%s%s%s", image, snap ? "@" : "", snap ? snap : "") < 0)
    return NULL;
  return s;
}

static int intend_disks(struct run *r, struct sp_err *e)
{
  size_t n = r->plan.ndisks, k = 0;
  char **items = calloc(2 * n + 1, sizeof *items);
  if (!items)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "intents");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct disk_plan *dp = &r->plan.disks[i];
    _cleanup_free_ char *image = NULL;
    _cleanup_free_ char *out = disk_output(r, dp, &image);
    char *whole = out && !dp->rbd_image ? intent_item(image, NULL) : NULL;
    char *snap = out ? intent_item(image, r->id) : NULL;
    if (whole)
      items[k++] = whole;
    if (snap)
      items[k++] = snap;
    if (!out || !snap || (!dp->rbd_image && !whole))
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "intents");
  }
  if (rc == 0)
    rc = rbd_target_intend(&r->rbd, r->id, (const char *const *)items, k, e);
  for (size_t i = 0; i < k; i++)
    free(items[i]);
  free(items);
  return rc;
}

int backup_copy_disks(struct run *r, struct sp_err *e)
{
  size_t n = r->plan.ndisks ? r->plan.ndisks : 1;
  r->tasks = calloc(n, sizeof *r->tasks);
  r->results = calloc(n, sizeof *r->results);
  _cleanup_free_ char *path = copier_path();
  if (!r->tasks || !r->results || !path)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "copiers");
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
    bool full = strcmp(dp->level, "full") == 0;
    if (!full && asprintf(&bitmap, "qemu:dirty-bitmap:backup-%s", t) < 0)
      bitmap = NULL;
    /* The command goes through the shell as the policy wrote it; every
     * value it needs is in the environment, never in the string. */
    if (!uri || !out || (!full && !bitmap) || argv_add(&task->argv, "/bin/sh") < 0 ||
        argv_add(&task->argv, "-c") < 0 || argv_add(&task->argv, copier) < 0 ||
        env_add(&task->env, "STILLPOINT_NBD_URI", uri) < 0 ||
        env_add(&task->env, "STILLPOINT_DISK", t) < 0 ||
        env_add(&task->env, "STILLPOINT_DISK_SIZE", size) < 0 ||
        env_add(&task->env, "STILLPOINT_LEVEL", dp->level) < 0 ||
        env_add(&task->env, "STILLPOINT_BITMAP", bitmap) < 0 ||
        env_add(&task->env, "STILLPOINT_OUTPUT", out) < 0 ||
        env_add(&task->env, "STILLPOINT_PARENT_OUTPUT", dp->parent_image) < 0 ||
        env_add(&task->env, "STILLPOINT_POINT_DIR", r->pd.partial) < 0 ||
        env_add(&task->env, "STILLPOINT_DOMAIN", r->pf.dom.name) < 0 ||
        env_add(&task->env, "STILLPOINT_DOMAIN_UUID", r->pf.dom.uuid) < 0 ||
        env_add(&task->env, "STILLPOINT_CHECKPOINT", r->id) < 0 ||
        env_add(&task->env, "STILLPOINT_STALL_TIMEOUT_S", stall) < 0 ||
        env_add(&task->env, "PATH", path) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "copier environment");
    if (r->rbd_on &&
        (env_add(&task->env, "STILLPOINT_CEPH_CONF",
                 rbd_target_env(&r->rbd, "conf", timeout, sizeof timeout)) < 0 ||
         env_add(&task->env, "STILLPOINT_CEPH_USER",
                 rbd_target_env(&r->rbd, "user", timeout, sizeof timeout)) < 0 ||
         env_add(&task->env, "STILLPOINT_CEPH_KEYRING",
                 rbd_target_env(&r->rbd, "keyring", timeout, sizeof timeout)) < 0 ||
         env_add(&task->env, "STILLPOINT_CEPH_TIMEOUT",
                 rbd_target_env(&r->rbd, "timeout", timeout, sizeof timeout)) < 0))
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "copier environment");
  }
  if (r->rbd_on && intend_disks(r, e) < 0)
    return -1;
  int signo;
  char via[300] = "";
  if (r->job.tcp)
    snprintf(via, sizeof via, " over NBD TLS from %s port %d", r->tcp.host, r->tcp.port);
  sp_info(r->log, "copying %zu disk%s of %s (%s point %s)%s", r->ntasks,
          r->ntasks == 1 ? "" : "s", r->pf.dom.name, r->plan.level, r->id, via);
  if (task_pool_run(r->tasks, r->ntasks, sp_config_int(&r->cfg, SP_KEY_PARALLEL), true, r->sigfd,
                    r->log, &signo, e) < 0)
    return sp_err_prefix(e, signo ? "while copying" : "the copier");
  /* In Ceph the copier's exit 0 means its snapshot exists (the contract). */
  for (size_t i = 0; !r->rbd_on && i < r->ntasks; i++) {
    char rel[300];
    snprintf(rel, sizeof rel, "disks/%s.qcow2", r->tasks[i].label);
    _cleanup_free_ char *out = point_path(&r->pd, rel);
    if (!out || !sp_exists(out))
      return sp_err_set(e, SP_EXIT_FAILED, "the copier exited 0 for %s but wrote no %s",
                        r->tasks[i].label, out ? out : rel);
  }
  return 0;
}
