#include "level_plan.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_xml.h"
#include "cleanup.h"
#include "fsutil.h"
#include "image_check.h"
#include "level_choice.h"
#include "point_layout.h"
#include "virt.h"
#include "xalloc.h"

/* The complete points of this domain, oldest first. */
struct history {
  struct sp_manifest *m;
  size_t n;
};

static void history_free(struct history *h)
{
  for (size_t i = 0; i < h->n; i++)
    sp_manifest_free(&h->m[i]);
  free(h->m);
}

static int history_load(const char *domain_dir, struct rbd_target *rbd, const char *uuid,
                        const struct sp_log *log, struct history *h, struct sp_err *e)
{
  memset(h, 0, sizeof *h);
  if (rbd)
    return rbd_target_load_points(rbd, &h->m, &h->n, e);
  _cleanup_free_ struct sp_point_ref *refs = NULL;
  size_t n;
  if (sp_points_list(domain_dir, &refs, &n, e) < 0)
    return -1;
  h->m = sp_xcalloc(n ? n : 1, sizeof *h->m);
  for (size_t i = 0; i < n; i++) {
    if (refs[i].partial)
      continue;
    _cleanup_free_ char *dir = sp_path_join(domain_dir, refs[i].id);
    struct sp_err me = { 0 };
    if (!dir || sp_manifest_load(dir, &h->m[h->n], &me) < 0) {
      sp_warn(log, "point %s is unreadable and left out of the chain: %s", refs[i].id, me.msg);
      continue;
    }
    if (strcmp(h->m[h->n].uuid, uuid) != 0 || strcmp(h->m[h->n].id, refs[i].id) != 0) {
      sp_warn(log, "point %s belongs to another domain (UUID %s) or names another id: left out "
              "of the chain", refs[i].id, h->m[h->n].uuid);
      sp_manifest_free(&h->m[h->n]);
      continue;
    }
    h->n++;
  }
  return 0;
}

static const struct sp_manifest *history_find(const struct history *h, const char *id)
{
  return level_history_find(h->m, h->n, id);
}

static bool checkpoint_exists(const char *name, void *dom)
{
  _cleanup_checkpoint_ virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
  return cp != NULL;
}

/* Whether every disk of the checkpoint still has its bitmap in QEMU. */
static bool bitmaps_present(virDomainCheckpointPtr cp, char **missing)
{
  _cleanup_free_ char *xml = virDomainCheckpointGetXMLDesc(
    cp, VIR_DOMAIN_CHECKPOINT_XML_SIZE | VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN);
  *missing = NULL;
  return !xml || checkpoint_xml_bitmaps_present(xml, missing); /* cannot tell: backupBegin decides */
}

/* Makes sure libvirt has base's checkpoint with its bitmaps, redefining it
 * from the point's checkpoint.xml when libvirt lost it.  Only base: the
 * job starts from it alone, and older checkpoints may have been deleted
 * on purpose (prune). *why is set when the point must be a full one. */
static int ensure_checkpoint(virDomainPtr dom, const char *domain_dir, struct rbd_target *rbd,
                             const struct sp_manifest *base, const struct sp_log *log,
                             char **why, struct sp_err *e)
{
  _cleanup_checkpoint_ virDomainCheckpointPtr cp =
    virDomainCheckpointLookupByName(dom, base->checkpoint, 0);
  bool redefined = false;
  if (!cp) {
    sp_warn(log, "libvirt has lost checkpoint %s of point %s: redefining it from the point's "
            "checkpoint.xml", base->checkpoint, base->id);
    _cleanup_free_ char *dir = rbd ? rbd_target_point_name(rbd, base->id)
                                   : sp_path_join(domain_dir, base->id);
    _cleanup_free_ char *path = sp_path_join(dir, "checkpoint.xml");
    _cleanup_free_ char *xml = NULL, *fixed = NULL;
    size_t len = 0;
    struct sp_err re = { 0 };
    if ((rbd ? rbd_target_read(rbd, base->id, "checkpoint.xml", &xml, &len, &re)
             : sp_read_file(path, 16u << 20, &xml, &len, &re)) < 0) {
      *why = sp_xasprintf("checkpoint %s is missing in libvirt and %s cannot be read: %s",
                          base->checkpoint, path, re.msg);
      return 0;
    }
    fixed = checkpoint_xml_for_redefine(xml, len, checkpoint_exists, dom);
    cp = fixed ? virDomainCheckpointCreateXML(dom, fixed, VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE)
               : NULL;
    if (!cp) {
      *why = sp_xasprintf("checkpoint %s is missing in libvirt and could not be redefined from "
                          "%s: %s", base->checkpoint, path, fixed ? virt_errmsg() : "unreadable XML");
      return 0;
    }
    redefined = true;
    sp_info(log, "checkpoint %s redefined", base->checkpoint);
  }
  _cleanup_free_ char *disk = NULL;
  if (!bitmaps_present(cp, &disk)) {
    *why = sp_xasprintf("checkpoint %s has no bitmap on disk %s any more (removed outside "
                        "libvirt?)", base->checkpoint, disk ? disk : "?");
    /* A redefinition that brought back no bitmap must not stay behind. */
    if (redefined)
      virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
  }
  (void)e;
  return 0;
}

static int parent_image_ok(const char *domain_dir, const struct sp_manifest *base,
                           const struct sp_manifest_disk *md, struct sp_err *e)
{
  _cleanup_close_ int dfd = open(domain_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  _cleanup_free_ char *rel = sp_path_join(base->id, md->file);
  if (dfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", domain_dir);
  struct stat st;
  _cleanup_close_ int fd = sp_open_regular_at(dfd, rel, &st, e);
  return fd < 0 ? -1 : sp_image_check_fd(fd, rel, md->image_format, md->parent_file, NULL, e);
}

/* target = rbd: the disk is written into its chain's image over the
 * newest point's disk, so that image's newest snapshot must be the newest
 * point's (last) and the same image base has (docs/design.md, "Points in
 * Ceph"); returns 1 when the point must be full (*why says why). */
static int plan_rbd_disk(struct rbd_target *rbd, const struct sp_manifest *base,
                         const struct sp_manifest *last, const struct sp_manifest_disk *md,
                         struct disk_plan *dp, char **why, struct sp_err *e)
{
  const struct sp_manifest_disk *ml = sp_manifest_disk(last, md->target);
  if (!ml || strcmp(ml->rbd_image, md->rbd_image) != 0) {
    *why = sp_xasprintf("disk %s of point %s is not in the image of point %s", md->target, last->id,
                        base->id);
    return 1;
  }
  char newest[256];
  struct sp_err se = { 0 };
  int rc = rbd_target_newest_snap(rbd, md->rbd_image, newest, sizeof newest, &se);
  if (rc != 0 || strcmp(newest, ml->rbd_snapshot) != 0) {
    *why = sp_xasprintf("RBD image %s %s", md->rbd_image,
                        rc < 0   ? se.msg
                        : rc > 0 ? "is missing"
                                 : "does not end with the newest point's snapshot");
    return 1;
  }
  dp->rbd_image = sp_xstrdup(md->rbd_image);
  dp->parent_image = rbd_target_spec(rbd, md->rbd_image, ml->rbd_snapshot);
  return 0;
}

/* Fills the per-disk plan against base (NULL for a full point); returns
 * 1 when the whole point must be full after all (*why says why). */
static int plan_disks(const char *domain_dir, struct rbd_target *rbd, const struct preflight *pf,
                      const struct sp_manifest *base, const struct sp_manifest *last,
                      struct chain_plan *p, char **why, struct sp_err *e)
{
  p->disks = sp_xcalloc(pf->ndisks ? pf->ndisks : 1, sizeof *p->disks);
  for (size_t i = 0; i < pf->ndisks; i++) {
    const struct pf_disk *d = &pf->disks[i];
    if (d->skip)
      continue;
    struct disk_plan *dp = &p->disks[p->ndisks++];
    dp->pf = d;
    dp->bitmap = !d->full_only;
    dp->level = SP_LEVEL_FULL;
    if (!base || d->full_only)
      continue;
    const struct sp_manifest_disk *md = sp_manifest_disk(base, d->disk->target);
    if (!md)
      continue; /* a disk new since the last point: full, in a point that is not */
    if (md->size != d->capacity) {
      *why = sp_xasprintf("disk %s changed size since point %s", d->disk->target, base->id);
      return 1;
    }
    if (!md->format || !d->disk->format || strcmp(md->format, d->disk->format) != 0)
      continue;
    if (rbd) {
      int r = plan_rbd_disk(rbd, base, last, md, dp, why, e);
      if (r != 0)
        return r;
      dp->level = p->level;
      continue;
    }
    /* A raw image (a full-only copier's) cannot be a qcow2 backing file. */
    if (strcmp(md->image_format, "qcow2") != 0)
      continue;
    _cleanup_free_ char *pdir = sp_path_join(domain_dir, base->id);
    char *img = sp_path_join(pdir, md->file);
    if (!sp_exists(img)) {
      *why = sp_xasprintf("image %s of point %s is missing", img, base->id);
      free(img);
      return 1;
    }
    /* The copier will build on it: it must be what the chain says, read
     * as a restore would read it. */
    struct sp_err ce = { 0 };
    if (parent_image_ok(domain_dir, base, md, &ce) < 0) {
      *why = sp_xasprintf("image %s of point %s does not pass its check: %s", img, base->id,
                          ce.msg);
      free(img);
      return 1;
    }
    dp->parent_image = img;
    dp->parent_file = sp_xasprintf("../../%s/%s", base->id, md->file);
    dp->level = p->level;
  }
  return 0;
}

static void reset_disks(struct chain_plan *p)
{
  for (size_t i = 0; i < p->ndisks; i++) {
    free(p->disks[i].parent_image);
    free(p->disks[i].parent_file);
    free(p->disks[i].rbd_image);
  }
  free(p->disks);
  p->disks = NULL;
  p->ndisks = 0;
}

int chain_plan_make(virDomainPtr dom, const char *domain_dir, struct rbd_target *rbd,
                    const struct preflight *pf,
                    const struct sp_config *cfg, struct sp_level_req level_req,
                    const struct sp_log *log, struct chain_plan *p, struct sp_err *e)
{
  memset(p, 0, sizeof *p);
  struct history h;
  if (history_load(domain_dir, rbd, pf->dom.uuid, log, &h, e) < 0)
    return -1;
  int rc = -1;
  const struct sp_manifest *last = h.n ? &h.m[h.n - 1] : NULL;
  /* A Ceph target has no overlays (the copier writes into the chain's
   * image): copier_format does not force full points there. */
  const char *copier_format = rbd ? "qcow2" : sp_config_str(cfg, SP_KEY_COPIER_FORMAT);
  p->level = level_choose(level_req, copier_format, sp_config_int(cfg, SP_KEY_FULL_EVERY), h.m,
                          h.n, &p->why_full);
  const struct sp_manifest *base = NULL;
  if (last && p->level != SP_LEVEL_FULL) { /* not full: there is a last point */
    const char *full_id = last->level == SP_LEVEL_FULL ? last->id : last->full;
    base = p->level == SP_LEVEL_INC ? last : history_find(&h, full_id);
    if (!base)
      p->why_full = sp_xasprintf("the chain's full point %s is gone", full_id ? full_id : "?");
    if (base && !base->checkpoint)
      p->why_full = sp_xasprintf("point %s has no checkpoint to start from", base->id);
    if (base && base->checkpoint &&
        ensure_checkpoint(dom, domain_dir, rbd, base, log, &p->why_full, e) < 0)
      goto out;
  }
  if (base && !p->why_full) {
    int r = plan_disks(domain_dir, rbd, pf, base, last, p, &p->why_full, e);
    if (r < 0)
      goto out;
  }
  if (p->why_full || !base) {
    p->level = SP_LEVEL_FULL;
    base = NULL;
    reset_disks(p);
    if (plan_disks(domain_dir, rbd, pf, NULL, NULL, p, &p->why_full, e) < 0)
      goto out;
  } else {
    p->parent_id = sp_xstrdup(base->id);
    p->parent_checkpoint = sp_xstrdup(base->checkpoint);
    const char *full_id = base->level == SP_LEVEL_FULL ? base->id : base->full;
    p->full_id = full_id ? sp_xstrdup(full_id) : NULL;
  }
  rc = 0;
out:
  history_free(&h);
  return rc;
}

void chain_plan_free(struct chain_plan *p)
{
  reset_disks(p);
  free(p->parent_id);
  free(p->full_id);
  free(p->parent_checkpoint);
  free(p->why_full);
  memset(p, 0, sizeof *p);
}

int checkpoint_delete(virDomainPtr dom, const char *name, struct sp_err *e)
{
  const char *dname = virDomainGetName(dom);
  _cleanup_checkpoint_ virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom, name, 0);
  if (!cp)
    return virt_errcode() == VIR_ERR_NO_DOMAIN_CHECKPOINT
             ? 0
             : sp_err_set(e, SP_EXIT_FAILED, "cannot look up checkpoint %s: %s", name,
                          virt_errmsg());
  if (virDomainCheckpointDelete(cp, 0) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot delete checkpoint %s: %s (delete it with "
                      "`virsh checkpoint-delete %s %s`)", name, virt_errmsg(),
                      dname, name);
  return 0;
}
