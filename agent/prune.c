#include "prune.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "manifest.h"
#include "point_layout.h"
#include "sha256.h"
#include "virt.h"

struct pt {
  struct sp_manifest m;
  bool kept;
  bool changed;    /* manifest rewritten (merge, or a new full id) */
};

struct pruning {
  const char *dir;
  struct pt *p;
  size_t n;
  bool dry_run;
  const struct sp_log *log;
  json_object *actions;
};

static void act(struct pruning *pr, const char *what, const char *key, const char *name,
                const char *why)
{
  sp_info(pr->log, "%s%s %s%s%s", pr->dry_run ? "would " : "", what, name, why ? ": " : "",
          why ? why : "");
  if (!pr->actions)
    return;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "action", json_object_new_string(what));
  json_object_object_add(o, key, json_object_new_string(name));
  if (why)
    json_object_object_add(o, "why", json_object_new_string(why));
  json_object_array_add(pr->actions, o);
}

static struct pt *find(struct pruning *pr, const char *id)
{
  for (size_t i = 0; id && i < pr->n; i++)
    if (strcmp(pr->p[i].m.id, id) == 0)
      return &pr->p[i];
  return NULL;
}

/* The point a disk's image overlays: "../../<id>/disks/..." */
static struct pt *disk_parent(struct pruning *pr, const struct sp_manifest_disk *d)
{
  if (!d->parent_file)
    return NULL;
  char id[SP_POINT_ID_MAX];
  snprintf(id, sizeof id, "%.*s", (int)strcspn(d->parent_file + 6, "/"), d->parent_file + 6);
  return find(pr, id);
}

/* Whether p reaches, through any disk's chain, a point that is not kept. */
static bool needs_unkept(struct pruning *pr, struct pt *p, int depth)
{
  if (depth > 1000)
    return true;
  for (size_t i = 0; i < p->m.ndisks; i++) {
    const struct sp_manifest_disk *d = &p->m.disks[i];
    if (!d->parent_file)
      continue;
    struct pt *q = disk_parent(pr, d);
    if (!q || !q->kept || needs_unkept(pr, q, depth + 1))
      return true;
  }
  return false;
}

static int rewrite_point(struct pruning *pr, struct pt *p, struct sp_err *e)
{
  _cleanup_free_ char *pdir = sp_path_join(pr->dir, p->m.id);
  _cleanup_free_ char *json = NULL;
  _cleanup_close_ int dfd = pdir ? open(pdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", pdir ? pdir : p->m.id);
  if (sp_manifest_to_json(&p->m, &json, e) < 0 ||
      sp_write_file_at(dfd, "manifest.json", json, strlen(json), 0600, e) < 0)
    return -1;
  /* SHA256SUMS anew: every file of the point, as backup wrote them. */
  _cleanup_free_ char *text = NULL, *sums_path = sp_path_join(pdir, "SHA256SUMS");
  size_t len;
  struct sp_sums s = { 0 };
  if (!sums_path || sp_read_file(sums_path, 1 << 20, &text, &len, e) < 0 ||
      sp_sums_parse(text, len, &s, e) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < s.n; i++) {
    _cleanup_free_ char *f = sp_path_join(pdir, s.v[i].path);
    rc = f ? sp_sha256_file(f, s.v[i].sha256, e) : sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "sums");
  }
  if (rc == 0)
    rc = sp_sums_write(dfd, &s, e);
  sp_sums_free(&s);
  if (rc == 0 && fsync(dfd) < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", pdir);
  return rc;
}

/* qemu-img convert of an overlay's whole chain into a standalone image,
 * put in place of the overlay. */
static int flatten(const char *img, struct sp_err *e)
{
  _cleanup_free_ char *tmp = NULL;
  if (asprintf(&tmp, "%s.merging", img) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "merge");
  unlink(tmp);
  char *argv[] = { "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", (char *)img, tmp,
                   NULL };
  struct sp_run_result r;
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int st = r.status;
  if (st != 0)
    sp_err_set(e, SP_EXIT_FAILED, "merging %s failed: %s", img, r.err ? r.err : "");
  sp_run_result_free(&r);
  if (st != 0) {
    unlink(tmp);
    return -1;
  }
  if (chmod(tmp, 0600) < 0 || rename(tmp, img) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot put %s in place", img);
  return 0;
}

/* Makes p a full point: every overlay flattened.  A dry run changes only
 * the plan in memory, so what follows sees p as the real run would. */
static int merge(struct pruning *pr, struct pt *p, struct sp_err *e)
{
  act(pr, "merge", "point", p->m.id, "a kept point whose chain reaches points that go: its "
      "images are flattened and it becomes a full point");
  _cleanup_free_ char *pdir = sp_path_join(pr->dir, p->m.id);
  if (!pdir)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "merge");
  for (size_t i = 0; i < p->m.ndisks; i++) {
    struct sp_manifest_disk *d = &p->m.disks[i];
    if (!d->parent_file)
      continue;
    _cleanup_free_ char *img = sp_path_join(pdir, d->file);
    if (!img)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "merge");
    if (!pr->dry_run && flatten(img, e) < 0)
      return -1;
    free(d->parent_file);
    d->parent_file = NULL;
    free(d->level);
    d->level = strdup("full");
  }
  free(p->m.level);
  p->m.level = strdup("full");
  free(p->m.parent);
  p->m.parent = NULL;
  free(p->m.full);
  p->m.full = NULL;
  p->changed = true;
  sp_manifest_warn(&p->m, "merged by prune: its older chain was removed, its images were "
                   "flattened into a full point");
  return 0;
}

/* The id of the full point p's chain starts at (NULL when p is one). */
static const char *chain_full(struct pruning *pr, struct pt *p)
{
  const char *full = NULL;
  for (int i = 0; p && i < 1000; i++) {
    if (strcmp(p->m.level, "full") == 0)
      return full ? p->m.id : NULL;
    full = p->m.id;
    p = find(pr, p->m.parent);
  }
  return NULL;
}

static void fix_full_ids(struct pruning *pr)
{
  for (size_t i = 0; i < pr->n; i++) {
    struct pt *p = &pr->p[i];
    if (!p->kept || strcmp(p->m.level, "full") == 0)
      continue;
    const char *f = chain_full(pr, p);
    if (f && (!p->m.full || strcmp(p->m.full, f) != 0)) {
      free(p->m.full);
      p->m.full = strdup(f);
      p->changed = true;
    }
  }
}

static int drop_checkpoints(struct pruning *pr, virDomainPtr dom, struct sp_err *e)
{
  if (!dom || pr->n == 0)
    return 0;
  /* Needed by the next point: the newest point's checkpoint (inc) and its
   * chain's full's (diff). */
  struct pt *last = &pr->p[pr->n - 1];
  struct pt *full = find(pr, chain_full(pr, last));
  for (size_t i = 0; i < pr->n; i++) {
    struct pt *p = &pr->p[i];
    if (!p->m.checkpoint || p == last || p == full)
      continue;
    _cleanup_checkpoint_ virDomainCheckpointPtr cp =
      virDomainCheckpointLookupByName(dom, p->m.checkpoint, 0);
    if (!cp)
      continue;
    act(pr, "delete checkpoint", "checkpoint", p->m.checkpoint, NULL);
    if (!pr->dry_run && virDomainCheckpointDelete(cp, 0) < 0)
      sp_warn(pr->log, "cannot delete checkpoint %s: %s", p->m.checkpoint, virt_errmsg());
  }
  (void)e;
  return 0;
}

int prune_domain(virDomainPtr dom, const char *domain_dir, long keep, bool dry_run,
                 const struct sp_log *log, json_object *actions, struct sp_err *e)
{
  struct pruning pr = { .dir = domain_dir, .dry_run = dry_run, .log = log, .actions = actions };
  _cleanup_free_ struct sp_point_ref *refs = NULL;
  size_t n;
  if (sp_points_list(domain_dir, &refs, &n, e) < 0)
    return -1;
  pr.p = calloc(n ? n : 1, sizeof *pr.p);
  if (!pr.p)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "prune");
  int rc = 0;
  /* The caller holds the VM's lock: a .partial here is a failed point. */
  for (size_t i = 0; i < n; i++) {
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/%s%s", domain_dir, refs[i].id,
                 refs[i].partial ? SP_PARTIAL_SUFFIX : "") < 0) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "prune");
      goto out;
    }
    if (refs[i].partial) {
      char name[SP_POINT_ID_MAX + 16];
      snprintf(name, sizeof name, "%s%s", refs[i].id, SP_PARTIAL_SUFFIX);
      act(&pr, "remove", "point", name, "incomplete");
      if (!dry_run && sp_rm_rf(dir, e) < 0) {
        rc = -1;
        goto out;
      }
      continue;
    }
    struct sp_err me = { 0 };
    if (sp_manifest_load(dir, &pr.p[pr.n].m, &me) < 0) {
      sp_warn(log, "point %s is unreadable and left alone: %s", refs[i].id, me.msg);
      continue;
    }
    pr.n++;
  }
  for (size_t i = 0; i < pr.n; i++)
    pr.p[i].kept = keep <= 0 || i + (size_t)keep >= pr.n;
  for (size_t i = 0; i < pr.n; i++) {
    struct pt *p = &pr.p[i];
    if (p->kept && needs_unkept(&pr, p, 0) && (rc = merge(&pr, p, e)) < 0)
      goto out;
  }
  fix_full_ids(&pr);
  for (size_t i = 0; i < pr.n; i++)
    if (pr.p[i].changed && !dry_run && (rc = rewrite_point(&pr, &pr.p[i], e)) < 0)
      goto out;
  if ((rc = drop_checkpoints(&pr, dom, e)) < 0)
    goto out;
  for (size_t i = 0; i < pr.n; i++) {
    if (pr.p[i].kept)
      continue;
    act(&pr, "remove", "point", pr.p[i].m.id, NULL);
    _cleanup_free_ char *dir = sp_path_join(domain_dir, pr.p[i].m.id);
    if (!dry_run && (!dir || sp_rm_rf(dir, e) < 0)) {
      rc = -1;
      goto out;
    }
  }
  /* No point at all (the domain directory may not exist yet): nothing to sync. */
  if (!dry_run && n > 0)
    rc = sp_fsync_dir(domain_dir, e);
out:
  for (size_t i = 0; i < pr.n; i++)
    sp_manifest_free(&pr.p[i].m);
  free(pr.p);
  return rc;
}
