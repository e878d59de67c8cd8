#include "prune.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "level_plan.h"
#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "image_check.h"
#include "manifest.h"
#include "point_chain.h"
#include "point_layout.h"
#include "retention.h"
#include "sha256.h"
#include "trust.h"
#include "virt.h"
#include "xalloc.h"

struct pt {
  struct sp_manifest m;
  bool merged;
  bool tried;      /* verified for a merge, or found not to verify */
  struct sp_sums sums; /* loaded when the point verified for a merge; updated by it */
};

struct pruning {
  const char *dir;
  int dfd;         /* the domain directory, checked as trusted */
  struct pt *p;
  size_t n;
  struct retention r; /* the decisions' view of p: r.m[i] is &p[i].m */
  bool *changed;   /* manifest rewritten (merge, or a new full id) */
  bool dry_run;
  const struct sp_log *log;
  json_object *actions;
  char *unverified; /* the first point not merged because it did not verify */
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

/* In a backup, SIGINT/SIGTERM/SIGHUP stay blocked after the copy (its
 * signalfd) and would wait until prune is done - systemd then SIGKILLs
 * after TimeoutStopSec.  Asked to stop, prune stops between two points
 * (never inside a merge or a removal): what it leaves is whole. */
static int stop_asked(const struct pruning *pr, struct sp_err *e)
{
  sigset_t pending;
  if (sigpending(&pending) < 0 || (sigismember(&pending, SIGTERM) != 1 &&
                                   sigismember(&pending, SIGINT) != 1 &&
                                   sigismember(&pending, SIGHUP) != 1))
    return 0;
  return sp_err_set(e, SP_EXIT_FAILED, "stopped by a signal between two points of %s: every "
                    "point left is whole; prune again to finish", pr->dir);
}

/* A .partial is a failed point - unless a backup (of this or any other
 * host or URI writing into this target) holds its lock: then it is being
 * written now and stays. */
static int remove_partial(struct pruning *pr, const char *id, struct sp_err *e)
{
  char name[SP_POINT_ID_MAX + 16];
  snprintf(name, sizeof name, "%s%s", id, SP_PARTIAL_SUFFIX);
  int lfd = -1;
  int got = sp_point_lock_at(pr->dfd, id, false, &lfd, e);
  if (got < 0)
    return sp_err_prefix(e, "%s", pr->dir);
  if (got == 0) {
    sp_info(pr->log, "point %s is being written (its lock %s%s is held): left alone", name, id,
            SP_LOCK_SUFFIX);
    return 0;
  }
  act(pr, "remove", "point", name, "incomplete");
  int rc = 0;
  if (!pr->dry_run && sp_rm_rf_at(pr->dfd, name, e) < 0)
    rc = sp_err_prefix(e, "%s", pr->dir);
  if (!pr->dry_run)
    sp_point_unlock_at(pr->dfd, id, lfd);
  else if (lfd >= 0)
    close(lfd); /* a dry run leaves its lock file too */
  return rc;
}

static int open_point(struct pruning *pr, const char *id, struct sp_err *e)
{
  int fd = sp_open_beneath(pr->dfd, id, O_RDONLY | O_DIRECTORY, 0, e);
  return fd < 0 ? sp_err_prefix(e, "point %s", id) : fd;
}

/* A merge reads the whole chain of p and re-stamps p's SHA256SUMS: p must
 * verify first, every file against its SHA256SUMS, every chain's images
 * against theirs, every header as the manifest says.  Otherwise merging
 * would launder whatever was changed into a point that looks whole. */
static int verify_for_merge(struct pruning *pr, struct pt *p, struct sp_err *e)
{
  _cleanup_close_ int pfd = open_point(pr, p->m.id, e);
  if (pfd < 0 || sp_point_scan(pfd, p->m.id, e) < 0 || sp_sums_load_at(pfd, &p->sums, e) < 0)
    return -1;
  for (size_t i = 0; i < p->sums.n; i++) {
    const struct sp_sum *s = &p->sums.v[i];
    struct stat st;
    char hex[SP_SHA256_HEX_LEN + 1];
    _cleanup_close_ int fd = sp_open_regular_at(pfd, s->path, &st, e);
    if (fd < 0 || sp_sha256_fd(fd, hex, e) < 0)
      return sp_err_prefix(e, "%s/%s", p->m.id, s->path);
    if (strcmp(hex, s->sha256) != 0)
      return sp_err_set(e, SP_EXIT_FAILED, "%s/%s does not match its SHA-256 in SHA256SUMS",
                        p->m.id, s->path);
  }
  if (!sp_sums_find(&p->sums, "manifest.json"))
    return sp_err_set(e, SP_EXIT_FAILED, "%s: SHA256SUMS does not list manifest.json", p->m.id);
  for (size_t i = 0; i < p->m.ndisks; i++) {
    struct sp_disk_chain c;
    int rc = sp_disk_chain_resolve(pr->dfd, pfd, &p->m, &p->sums, p->m.disks[i].target, &c, e);
    if (rc == 0)
      rc = sp_chain_check_hashes(&c, 1, e);
    sp_disk_chain_free(&c);
    if (rc < 0)
      return -1;
  }
  return 0;
}

/* Rewrites p's manifest and its SHA256SUMS lines of what prune wrote (the
 * manifest, merged images); every other line stays as it was.  A point
 * that was not verified for a merge must still match its manifest.json
 * line, or nothing is written. */
static int rewrite_point(struct pruning *pr, struct pt *p, struct sp_err *e)
{
  _cleanup_close_ int pfd = open_point(pr, p->m.id, e);
  if (pfd < 0)
    return -1;
  if (!p->merged) {
    sp_sums_free(&p->sums);
    _cleanup_free_ char *old = NULL;
    size_t len;
    char hex[SP_SHA256_HEX_LEN + 1];
    if (sp_sums_load_at(pfd, &p->sums, e) < 0 ||
        sp_read_file_at(pfd, "manifest.json", 64u << 20, &old, &len, e) < 0)
      return sp_err_prefix(e, "point %s", p->m.id);
    sp_sha256_hex(old, len, hex);
    const char *want = sp_sums_find(&p->sums, "manifest.json");
    if (!want || strcmp(want, hex) != 0)
      return sp_err_set(e, SP_EXIT_FAILED, "point %s: manifest.json does not match SHA256SUMS: "
                        "not rewriting it (stillpoint verify names what else is wrong)",
                        p->m.id);
  }
  _cleanup_free_ char *json = NULL;
  char hex[SP_SHA256_HEX_LEN + 1];
  if (sp_manifest_to_json(&p->m, &json, e) < 0 ||
      sp_write_file_at(pfd, "manifest.json", json, strlen(json), 0600, e) < 0)
    return -1;
  sp_sha256_hex(json, strlen(json), hex);
  for (size_t i = 0; i < p->sums.n; i++)
    if (strcmp(p->sums.v[i].path, "manifest.json") == 0)
      memcpy(p->sums.v[i].sha256, hex, sizeof hex);
  if (sp_sums_write(pfd, &p->sums, e) < 0)
    return -1;
  if (fsync(pfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", p->m.id);
  return 0;
}

/* The overlay of disk d flattened with its whole chain into a standalone
 * image, put in place of the overlay; its new hash goes into p->sums.
 * qemu-img reads only the chain's checked descriptors and writes into
 * the point's disks/ directory held open. */
static int flatten(struct pruning *pr, struct pt *p, const struct sp_manifest_disk *d,
                   struct sp_err *e)
{
  _cleanup_close_ int pfd = open_point(pr, p->m.id, e);
  if (pfd < 0)
    return -1;
  _cleanup_close_ int ddfd = sp_open_beneath(pfd, SP_POINT_DISKS_DIR, O_RDONLY | O_DIRECTORY, 0, e);
  struct sp_disk_chain c;
  if (ddfd < 0 || sp_disk_chain_resolve(pr->dfd, pfd, &p->m, &p->sums, d->target, &c, e) < 0)
    return -1;
  const char *name = d->file + strlen(SP_POINT_DISKS_DIR "/");
  _cleanup_free_ char *tmp = NULL, *out = NULL;
  _cleanup_free_ int *lfds = NULL;
  size_t n = 0;
  _cleanup_free_ char *json = sp_chain_json(&c, 0, 4, &lfds, &n);
  _cleanup_free_ int *fds = sp_xcalloc(n + 1, sizeof *fds);
  int rc = 0;
  if (!json) {
    rc = sp_err_set(e, SP_EXIT_FAILED, "merging %s/%s: its chain has no image format qemu-img "
                    "can be given", p->m.id, d->file);
  } else {
    tmp = sp_xasprintf(".%s.merging", name);
    out = sp_xasprintf("/proc/self/fd/3/%s", tmp);
    fds[0] = ddfd;
    memcpy(fds + 1, lfds, n * sizeof *fds);
    unlinkat(ddfd, tmp, 0);
    /* O_DIRECT both ways where the file system takes it (the merged
     * image lands beside the overlay, link 0): through the page cache
     * every fresh page qemu-img wrote cost more CPU than the copy
     * (docs/facts.md, "qemu-nbd, qemu-img and qcow2"). */
    char *cache = sp_direct_io_all(lfds, n) ? "none" : "writeback";
    char *argv[] = { "qemu-img", "convert", "-q", "-T", cache, "-t", cache, "-O", "qcow2",
                     json, out, NULL };
    struct sp_run_result r;
    if ((rc = sp_run_fds(argv, fds, n + 1, SP_RUN_CAPTURE_ERR, &r, e)) == 0) {
      if (r.status != 0)
        rc = sp_err_set(e, SP_EXIT_FAILED, "merging %s/%s failed: %s", p->m.id, d->file,
                        r.err ? r.err : "");
      sp_run_result_free(&r);
    }
  }
  sp_disk_chain_free(&c);
  char hex[SP_SHA256_HEX_LEN + 1];
  if (rc == 0) {
    struct stat st;
    _cleanup_close_ int fd = openat(ddfd, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0600) < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0)
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot finish %s/%s", p->m.id, d->file);
    else if (sp_image_check_fd(fd, d->file, "qcow2", NULL, NULL, e) < 0 ||
             sp_sha256_fd(fd, hex, e) < 0)
      rc = -1;
  }
  if (rc == 0 && renameat(ddfd, tmp, ddfd, name) < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot put %s/%s in place", p->m.id, d->file);
  if (rc < 0) {
    if (tmp)
      unlinkat(ddfd, tmp, 0);
    return -1;
  }
  for (size_t i = 0; i < p->sums.n; i++)
    if (strcmp(p->sums.v[i].path, d->file) == 0)
      memcpy(p->sums.v[i].sha256, hex, sizeof hex);
  return fsync(ddfd) < 0 ? sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync") : 0;
}

/* Makes p a full point: every overlay flattened.  A dry run changes only
 * the plan in memory, so what follows sees p as the real run would. */
static int merge(struct pruning *pr, struct pt *p, struct sp_err *e)
{
  act(pr, "merge", "point", p->m.id, "a kept point whose chain reaches points that go: its "
      "images are flattened and it becomes a full point");
  for (size_t i = 0; i < p->m.ndisks; i++) {
    const struct sp_manifest_disk *d = &p->m.disks[i];
    if (d->parent_file && !pr->dry_run && flatten(pr, p, d, e) < 0)
      return -1;
  }
  retention_merged_manifest(&p->m);
  sp_manifest_warn(&p->m, "merged by prune: its older chain was removed, its images were "
                   "flattened into a full point");
  pr->changed[p - pr->p] = p->merged = true;
  return 0;
}

/* Merges what must be merged; a point that does not verify is left as
 * it is and its whole chain is kept instead, so no chain ever breaks. */
static int merge_kept(struct pruning *pr, struct sp_err *e)
{
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < pr->n; i++) {
      struct pt *p = &pr->p[i];
      if (!pr->r.kept[i] || p->tried || !retention_needs_unkept(&pr->r, i))
        continue;
      p->tried = true;
      struct sp_err ve = { 0 };
      if (verify_for_merge(pr, p, &ve) < 0) {
        char why[2200];
        snprintf(why, sizeof why, "does not verify (%s): not merged, and the points it "
                 "builds on are kept", ve.msg);
        act(pr, "keep chain", "point", p->m.id, why);
        sp_warn(pr->log, "point %s %s", p->m.id, why);
        if (!pr->unverified)
          pr->unverified = sp_xstrdup(p->m.id);
        retention_keep_chain_of(&pr->r, i);
        sp_sums_free(&p->sums);
        again = true;
        break;
      }
      if (stop_asked(pr, e) < 0 || merge(pr, p, e) < 0)
        return -1;
    }
  }
  return 0;
}

static int drop_checkpoints(struct pruning *pr, virDomainPtr dom, long keep, struct sp_err *e)
{
  if (!dom || pr->n == 0)
    return 0;
  _cleanup_free_ bool *needed = sp_xcalloc(pr->n, sizeof *needed);
  retention_checkpoints_needed(&pr->r, keep, needed);
  for (size_t i = 0; i < pr->n; i++) {
    struct pt *p = &pr->p[i];
    if (!p->m.checkpoint || needed[i])
      continue;
    _cleanup_checkpoint_ virDomainCheckpointPtr cp =
      virDomainCheckpointLookupByName(dom, p->m.checkpoint, 0);
    if (!cp)
      continue;
    act(pr, "delete checkpoint", "checkpoint", p->m.checkpoint, NULL);
    if (!pr->dry_run && virDomainCheckpointDelete(cp, 0) < 0)
      sp_warn(pr->log, "cannot delete checkpoint %s: %s", p->m.checkpoint, virt_errmsg());
  }
  return 0;
}

int prune_domain(virDomainPtr dom, const char *domain_dir, long keep, bool dry_run,
                 const struct sp_log *log, json_object *actions, struct sp_err *e)
{
  struct pruning pr = { .dir = domain_dir, .dfd = -1, .dry_run = dry_run, .log = log,
                        .actions = actions };
  _cleanup_free_ struct sp_point_ref *refs = NULL;
  size_t n = 0;
  /* No point at all (the domain directory may not exist yet). */
  if (!sp_exists(domain_dir))
    return 0;
  /* Everything below happens through this descriptor: a path swapped for
   * a symlink on the way can make prune neither read nor remove anything
   * outside the domain directory. */
  if ((pr.dfd = sp_trusted_dir_open("target", domain_dir, e)) < 0 ||
      sp_points_list_at(pr.dfd, domain_dir, &refs, &n, e) < 0) {
    if (pr.dfd >= 0)
      close(pr.dfd);
    return -1;
  }
  pr.p = sp_xcalloc(n ? n : 1, sizeof *pr.p);
  pr.changed = sp_xcalloc(n ? n : 1, sizeof *pr.changed);
  pr.r.m = sp_xcalloc(n ? n : 1, sizeof *pr.r.m);
  pr.r.kept = sp_xcalloc(n ? n : 1, sizeof *pr.r.kept);
  int rc = 0;
  /* Another VM of the same name (another host, another URI) may write into
   * this directory: its points are not ours to count or remove. */
  char uuid[VIR_UUID_STRING_BUFLEN] = "";
  if (dom && virDomainGetUUIDString(dom, uuid) < 0)
    uuid[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (refs[i].partial) {
      if ((rc = remove_partial(&pr, refs[i].id, e)) < 0)
        goto out;
      continue;
    }
    struct sp_err me = { 0 };
    int pfd = open_point(&pr, refs[i].id, &me);
    if (pfd < 0 || sp_manifest_load_at(pfd, refs[i].id, &pr.p[pr.n].m, &me) < 0 ||
        strcmp(pr.p[pr.n].m.id, refs[i].id) != 0) {
      if (pfd >= 0 && !me.msg[0])
        snprintf(me.msg, sizeof me.msg, "its manifest names point %s", pr.p[pr.n].m.id);
      sp_manifest_free(&pr.p[pr.n].m);
      sp_warn(log, "point %s is unreadable and left alone: %s", refs[i].id, me.msg);
    } else if (uuid[0] && pr.p[pr.n].m.uuid && strcmp(pr.p[pr.n].m.uuid, uuid) != 0) {
      sp_info(log, "point %s belongs to another VM named so (UUID %s, not %s): left alone",
              refs[i].id, pr.p[pr.n].m.uuid, uuid);
      sp_manifest_free(&pr.p[pr.n].m);
    } else {
      pr.n++;
    }
    if (pfd >= 0)
      close(pfd);
  }
  for (size_t i = 0; i < pr.n; i++)
    pr.r.m[i] = &pr.p[i].m;
  pr.r.n = pr.n;
  retention_keep_newest(&pr.r, keep);
  if ((rc = merge_kept(&pr, e)) < 0)
    goto out;
  retention_fix_full_ids(&pr.r, pr.changed);
  for (size_t i = 0; i < pr.n; i++)
    if (pr.changed[i] && !dry_run && (rc = rewrite_point(&pr, &pr.p[i], e)) < 0)
      goto out;
  if ((rc = drop_checkpoints(&pr, dom, keep, e)) < 0)
    goto out;
  for (size_t i = 0; i < pr.n; i++) {
    if (pr.r.kept[i])
      continue;
    if ((rc = stop_asked(&pr, e)) < 0)
      goto out;
    act(&pr, "remove", "point", pr.p[i].m.id, NULL);
    if (!dry_run && sp_rm_rf_at(pr.dfd, pr.p[i].m.id, e) < 0) {
      rc = sp_err_prefix(e, "%s", domain_dir);
      goto out;
    }
  }
  if (!dry_run && n > 0 && fsync(pr.dfd) < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync directory %s", domain_dir);
  if (rc == 0 && pr.unverified)
    rc = sp_err_set(e, SP_EXIT_FAILED, "point %s does not verify, so it was not merged and the "
                    "points it builds on were kept: run stillpoint verify on it",
                    pr.unverified);
out:
  for (size_t i = 0; i < pr.n; i++) {
    sp_manifest_free(&pr.p[i].m);
    sp_sums_free(&pr.p[i].sums);
  }
  free(pr.p);
  free(pr.changed);
  free(pr.r.m);
  free(pr.r.kept);
  free(pr.unverified);
  close(pr.dfd);
  return rc;
}

int prune_stale_partials(const char *domain_dir, const struct sp_log *log, struct sp_err *e)
{
  struct pruning pr = { .dir = domain_dir, .dfd = -1, .log = log };
  _cleanup_free_ struct sp_point_ref *refs = NULL;
  size_t n = 0;
  if (!sp_exists(domain_dir))
    return 0;
  if ((pr.dfd = sp_trusted_dir_open("target", domain_dir, e)) < 0)
    return -1;
  int rc = sp_points_list_at(pr.dfd, domain_dir, &refs, &n, e);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (refs[i].partial)
      rc = remove_partial(&pr, refs[i].id, e);
  close(pr.dfd);
  return rc;
}
