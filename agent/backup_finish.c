/* The point's own files: the state captured in the window written out, and
 * at the end each copier's image checked and hashed, the manifest and
 * SHA256SUMS written, the point renamed from <id>.partial to <id>. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_run.h"
#include "build_config.h"
#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "image_check.h"
#include "point_names.h"
#include "test_knob.h"
#include "virt.h"
#include "xalloc.h"

int backup_save_state(struct run *r, struct sp_err *e)
{
  _cleanup_checkpoint_ virDomainCheckpointPtr cp =
    virDomainCheckpointLookupByName(r->dom, r->id, 0);
  if (!cp || !(r->checkpoint_xml = virDomainCheckpointGetXMLDesc(cp, 0)))
    return sp_err_set(e, SP_EXIT_FAILED, "cannot read checkpoint %s: %s", r->id, virt_errmsg());
  if (virt_xml(r->dom, VIR_DOMAIN_XML_INACTIVE, &r->inactive_xml, e) < 0)
    return -1;
  if (point_put(&r->pd, "domain.xml", r->inactive_xml, strlen(r->inactive_xml), 0600, e) < 0 ||
      point_put(&r->pd, "checkpoint.xml", r->checkpoint_xml, strlen(r->checkpoint_xml), 0600,
                e) < 0)
    return -1;
  if (r->cap.nvram &&
      (point_mkdir(&r->pd, "nvram", e) < 0 || point_put_blob(&r->pd, "nvram", &r->cap.nv, e) < 0))
    return -1;
  if (r->cap.tpm) {
    char rel[32];
    snprintf(rel, sizeof rel, "tpm/%s", r->pf.tpm.subdir);
    if (point_put_tree(&r->pd, rel, &r->cap.tree, e) < 0)
      return -1;
  }
  test_failpoint("save-state", r->guardian.pid);
  return 0;
}

static char *dupn(const char *s) { return s ? sp_xstrdup(s) : NULL; }

static void fill_state(struct sp_manifest_state *s, const struct sp_file_info *fi,
                      const char *path, const struct sp_blob *files, size_t n)
{
  s->present = true;
  s->host_path = dupn(fi->path);
  s->path = dupn(path);
  s->owner = dupn(fi->owner);
  s->group = dupn(fi->group);
  s->mode = fi->mode;
  s->files = sp_xcalloc(n ? n : 1, sizeof *s->files);
  s->nfiles = n;
  for (size_t i = 0; i < n; i++) {
    s->files[i].name = sp_xstrdup(files[i].name);
    memcpy(s->files[i].sha256, files[i].sha256, sizeof s->files[i].sha256);
    s->files[i].mode = files[i].mode;
    s->files[i].size = (long long)files[i].len;
  }
}

static void build_manifest(struct run *r)
{
  struct sp_manifest *m = &r->m;
  char host[256] = "", created[32];
  /* The hypervisor the VM ran on (remote ones by their URI name). */
  if (r->hv.host.remote)
    snprintf(host, sizeof host, "%s", r->hv.host.name);
  else
    gethostname(host, sizeof host - 1);
  sp_utc_now(created);
  m->format = r->rbd_on ? SP_MANIFEST_FORMAT_RBD : SP_MANIFEST_FORMAT;
  m->tool = sp_xstrdup("stillpoint " STILLPOINT_VERSION);
  m->host = sp_xstrdup(host);
  m->domain = sp_xstrdup(r->pf.dom.name);
  m->uuid = sp_xstrdup(r->pf.dom.uuid);
  m->id = sp_xstrdup(r->id);
  m->level = r->plan.level;
  m->parent = dupn(r->plan.parent_id);
  m->full = dupn(r->plan.full_id);
  m->checkpoint = sp_xstrdup(r->id);
  m->parent_checkpoint = dupn(r->plan.parent_checkpoint);
  m->created = sp_xstrdup(created);
  m->disks = sp_xcalloc(r->plan.ndisks ? r->plan.ndisks : 1, sizeof *m->disks);
  m->skipped = sp_xcalloc(r->pf.ndisks ? r->pf.ndisks : 1, sizeof *m->skipped);
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    const struct disk_plan *dp = &r->plan.disks[i];
    const struct task *t = &r->tasks[i];
    const struct copy_result *res = &r->results[i];
    struct sp_manifest_disk *d = &m->disks[m->ndisks++];
    d->target = sp_xstrdup(dp->pf->disk->target);
    d->source = dupn(dp->pf->disk->source);
    d->format = dupn(dp->pf->disk->format);
    d->level = dp->level;
    d->parent_file = dupn(dp->parent_file);
    d->copier = sp_xstrdup(sp_config_str(&r->cfg, SP_KEY_COPIER));
    d->size = dp->pf->capacity;
    d->seconds = t->seconds;
    if (r->rbd_on) {
      /* The snapshot is a whole disk, read as raw. */
      d->image_format = sp_xstrdup("raw");
      d->rbd_image = dp->rbd_image
                       ? sp_xstrdup(dp->rbd_image)
                       : sp_rados_image_name(r->pf.dom.uuid, d->target, r->id);
      d->rbd_snapshot = sp_xstrdup(r->id);
      d->bytes_written = res->bytes_written;
      continue;
    }
    d->image_format = sp_xstrdup(sp_config_str(&r->cfg, SP_KEY_COPIER_FORMAT));
    d->file = sp_xasprintf(SP_POINT_DISK_FMT, d->target);
    if (res->have_bytes) {
      d->bytes_written = res->bytes_written;
    } else {
      struct stat st;
      _cleanup_free_ char *p = point_path(&r->pd, d->file);
      if (stat(p, &st) == 0)
        d->bytes_written = (unsigned long long)st.st_blocks * 512;
    }
  }
  for (size_t i = 0; i < r->pf.ndisks; i++)
    if (r->pf.disks[i].skip) {
      m->skipped[m->nskipped].target = sp_xstrdup(r->pf.disks[i].disk->target);
      m->skipped[m->nskipped++].reason = sp_xstrdup(r->pf.disks[i].skip);
    }
  if (r->cap.nvram) {
    char path[300];
    snprintf(path, sizeof path, "nvram/%s", r->cap.nv.name);
    fill_state(&m->nvram, &r->pf.nvram, path, &r->cap.nv, 1);
    m->nvram.type = sp_xstrdup(r->pf.dom.nvram.type == SP_NVRAM_BLOCK ? "block" : "file");
    m->nvram.format = dupn(r->pf.dom.nvram.format);
    m->nvram.template_path = dupn(r->pf.dom.nvram.template_path);
  }
  if (r->cap.tpm) {
    char path[32];
    snprintf(path, sizeof path, "tpm/%s", r->pf.tpm.subdir);
    fill_state(&m->tpm, &r->pf.tpm.dir, path, r->cap.tree.files, r->cap.tree.n);
    m->tpm.version = dupn(r->pf.dom.tpm.version);
    m->tpm.secret_uuid = dupn(r->pf.dom.tpm.secret_uuid);
  }
  m->offline = r->pf.offline;
  struct sp_manifest_window *w = &m->window;
  w->paused = r->win.we_paused;
  w->paused_at = sp_xstrdup(r->win.paused_at);
  w->resumed_at = sp_xstrdup(r->win.resumed_at);
  w->pause_ms = window_ms(&r->win);
  w->freeze_at = r->fz.freeze_at[0] ? sp_xstrdup(r->fz.freeze_at) : NULL;
  w->thawed_at = r->fz.thaw_at[0] ? sp_xstrdup(r->fz.thaw_at) : NULL;
  w->freeze_ms = freeze_ms(&r->fz);
  w->frozen = r->fz.count;
  w->thawed = r->fz.thawed;
  /* One instant needs the VM stopped while state and checkpoint are taken:
   * paused by us, or paused already. */
  w->consistent = r->win.we_paused || r->win.was_paused;
  w->capture_reads = r->cap.tpm_stats.reads;
  for (size_t i = 0; i < r->pf.warnings.n; i++)
    sp_manifest_warn(m, r->pf.warnings.v[i]);
  if (r->plan.why_full) {
    char buf[1024];
    snprintf(buf, sizeof buf, "full point instead of an incremental: %s", r->plan.why_full);
    sp_manifest_warn(m, buf);
  }
  if (r->fz.note[0])
    sp_manifest_warn(m, r->fz.note);
  if (!w->consistent)
    sp_manifest_warn(m, "pause = off: disks, NVRAM and TPM state were not taken at one instant");
}

/* What a copier wrote must be what the chain will take for it, read the
 * way every later reader reads it (image_check.h): the format the policy
 * says (never probed: a raw image holds the guest's bytes, which may
 * look like a qcow2 header naming any host file), an overlay of exactly
 * the parent for an incremental, nothing but itself for a full.  A
 * full-only copier (nbdcopy) given an incremental would otherwise leave a
 * point no restore could use. */
static int check_image(const struct run *r, const struct disk_plan *dp, int fd,
                       const char *rel, struct sp_err *e)
{
  const char *format = sp_config_str(&r->cfg, SP_KEY_COPIER_FORMAT);
  if (sp_image_check_fd(fd, rel, format, dp->parent_file, NULL, e) == 0)
    return 0;
  e->code = SP_EXIT_FAILED;
  return sp_err_prefix(e, "the copier's output is not what this %s point needs (%s, "
                       "copier_format = %s)%s", dp->parent_file ? "incremental" : "full",
                       dp->parent_file ? "a qcow2 overlay of the parent" : "an image of its own",
                       format,
                       dp->parent_file ? "; a full-only copier (like nbdcopy) needs level = full"
                                       : "; a copier that writes raw (like nbdcopy) needs "
                                         "copier_format = raw");
}

int backup_finish(struct run *r, struct sp_err *e)
{
  struct sp_manifest_timings *t = &r->m.timings;
  for (size_t i = 0; !r->rbd_on && i < r->ntasks; i++) {
    char rel[300];
    snprintf(rel, sizeof rel, SP_POINT_DISK_FMT, r->tasks[i].label);
    struct stat st;
    double t0 = phases_now();
    _cleanup_close_ int fd = sp_open_regular_at(r->pd.fd, rel, &st, e);
    if (fd < 0 || check_image(r, &r->plan.disks[i], fd, rel, e) < 0)
      return -1;
    t->check_ms += phases_now() - t0;
    const char *sha = r->results[i].sha256[0] ? r->results[i].sha256 : NULL;
    if (point_add_fd(&r->pd, rel, fd, sha, &t->fsync_ms, &t->hash_ms, e) < 0)
      return -1;
  }
  t->present = true;
  _cleanup_free_ char *json = NULL;
  build_manifest(r);
  if (sp_manifest_to_json(&r->m, &json, e) < 0 ||
      point_put(&r->pd, "manifest.json", json, strlen(json), 0600, e) < 0)
    return -1;
  test_failpoint("finish-before-rename", r->guardian.pid);
  /* In Ceph the point becomes visible with one write on the VM's index,
   * after every object and snapshot exists. */
  int rc = r->rbd_on ? rbd_target_commit(&r->rbd, r->id, r->pd.fd, &r->pd.sums, r->pf.dom.name,
                                          &r->made.maybe_point, e)
                      : point_finish(&r->pd, &r->tail, e);
  /* Complete from here, wherever it lives: the guardian keeps its
   * checkpoint if we die before we stop it (a Ceph point has no local
   * path the guardian could look at).  So does a point that may have
   * been committed: the next run decides from the pool's index. */
  if (rc == 0 || r->made.maybe_point)
    guardian_tell_published(&r->guardian);
  return rc;
}
