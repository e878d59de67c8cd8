#include "stale_job.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "level_plan.h"
#include "cleanup.h"
#include "fsutil.h"
#include "own_dirs.h"
#include "point_layout.h"
#include "virt.h"

/* The point id after "<uuid>-" in a job's XML (its socket or scratch
 * path), or false. */
static bool job_point_id(const char *xml, const char *uuid, char id[SP_POINT_ID_MAX])
{
  char tag[64];
  snprintf(tag, sizeof tag, "/%.36s-", uuid);
  for (const char *p = strstr(xml, tag); p; p = strstr(p + 1, tag)) {
    const char *s = p + strlen(tag);
    size_t n = strcspn(s, "/'\"<>");
    if (n == 0 || n >= SP_POINT_ID_MAX)
      continue;
    memcpy(id, s, n);
    id[n] = '\0';
    if (sp_point_id_valid(id))
      return true;
  }
  return false;
}

/* A point's checkpoint goes unless the point is complete. */
static void drop_checkpoint(virDomainPtr dom, const char *domain_dir, const char *id,
                            const struct sp_log *log)
{
  _cleanup_free_ char *final = sp_path_join(domain_dir, id);
  _cleanup_checkpoint_ virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, id, 0);
  if (!final || !cp || sp_exists(final))
    return;
  struct sp_err e = { 0 };
  if (checkpoint_delete(dom, id, &e) < 0)
    sp_warn(log, "%s", e.msg);
  else
    sp_warn(log, "deleted checkpoint %s of %s: its point never completed (left by a "
            "stillpoint run that no longer exists)", id, virDomainGetName(dom));
}

static void clean_job(virDomainPtr dom, const char *uuid, const char *domain_dir,
                      struct sp_host *host, const char *scratch_root, const struct sp_log *log)
{
  virDomainJobInfo ji;
  if (virDomainGetJobInfo(dom, &ji) < 0 || ji.type == VIR_DOMAIN_JOB_NONE)
    return;
  _cleanup_free_ char *xml = virDomainBackupGetXMLDesc(dom, 0);
  char id[SP_POINT_ID_MAX];
  if (!xml || !job_point_id(xml, uuid, id))
    return; /* not a backup job, or not ours: preflight refuses it */
  if (virDomainAbortJob(dom) < 0) {
    sp_warn(log, "cannot end the backup job of point %s left by a stillpoint run that no "
            "longer exists: %s", id, virt_errmsg());
    return;
  }
  sp_warn(log, "ended the backup job of point %s of %s, left by a stillpoint run that no "
          "longer exists (no live run holds the VM's lock)", id, virDomainGetName(dom));
  /* libvirt needs a moment to let go of the job before the checkpoint
   * may be deleted (the guardian waits the same way). */
  for (int i = 0; i < 50; i++) {
    if (virDomainGetJobInfo(dom, &ji) == 0 && ji.type == VIR_DOMAIN_JOB_NONE)
      break;
    struct timespec ts = { 0, 100 * 1000000L };
    nanosleep(&ts, NULL);
  }
  drop_checkpoint(dom, domain_dir, id, log);
  char tag[128];
  snprintf(tag, sizeof tag, "%.36s-%s", uuid, id);
  _cleanup_free_ char *run = sp_path_join(SP_RUN_DIR, tag);
  _cleanup_free_ char *scratch = sp_path_join(scratch_root, tag);
  struct sp_err ignored = { 0 };
  if (run)
    host->ops->rm_rf(host, run, &ignored);
  if (scratch)
    host->ops->rm_rf(host, scratch, &ignored);
}

void stale_job_clean(virDomainPtr dom, const char *uuid, const char *domain_dir,
                     struct sp_host *host, const char *scratch_root, const struct sp_log *log)
{
  clean_job(dom, uuid, domain_dir, host, scratch_root, log);
  /* Checkpoints of points left <id>.partial in this target (a job that
   * ended, but nobody deleted its checkpoint). */
  _cleanup_closedir_ DIR *d = opendir(domain_dir);
  for (struct dirent *de; d && (de = readdir(d));) {
    size_t n = strlen(de->d_name), sl = strlen(SP_PARTIAL_SUFFIX);
    if (n <= sl || n - sl >= SP_POINT_ID_MAX || strcmp(de->d_name + n - sl, SP_PARTIAL_SUFFIX))
      continue;
    char id[SP_POINT_ID_MAX];
    memcpy(id, de->d_name, n - sl);
    id[n - sl] = '\0';
    if (sp_point_id_valid(id))
      drop_checkpoint(dom, domain_dir, id, log);
  }
}

void stale_checkpoints_drop(virDomainPtr dom, const struct sp_strv *ids,
                            const struct sp_log *log)
{
  for (size_t i = 0; dom && i < ids->n; i++) {
    _cleanup_checkpoint_ virDomainCheckpointPtr cp =
      virDomainCheckpointLookupByName(dom, ids->v[i], 0);
    if (!cp)
      continue;
    struct sp_err e = { 0 };
    if (checkpoint_delete(dom, ids->v[i], &e) < 0)
      sp_warn(log, "%s", e.msg);
    else
      sp_warn(log, "deleted checkpoint %s of %s: the pool's index shows its point was never "
              "committed (its run failed)", ids->v[i], virDomainGetName(dom));
  }
}
