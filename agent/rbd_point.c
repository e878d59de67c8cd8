#include "rbd_point.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ceph_lib.h"
#include "cleanup.h"
#include "fsutil.h"
#include "rbd_spec.h"
#include "sha256.h"
#include "uuid.h"
#include "xalloc.h"

bool rbd_point_is(const char *arg)
{
  return sp_rbd_spec_is(arg);
}

/* rbd:POOL[/NS]/UUID@ID into the target and the point's UUID and id. */
static int parse(struct rbd_point *p, const char *arg, char **target, char *uuid,
                 struct sp_err *e)
{
  struct sp_rbd_spec s = { 0 };
  int rc = sp_rbd_spec_parse(arg, &s, e);
  if (rc == 0 && (!s.snap || !sp_uuid_ok(s.image) || !sp_point_id_valid(s.snap) ||
                  strlen(s.snap) >= sizeof p->id))
    rc = sp_err_set(e, SP_EXIT_USAGE, "%s: a Ceph point is named rbd:POOL[/NAMESPACE]/UUID@ID "
                    "(the path `stillpoint list --json` shows)", arg);
  if (rc == 0)
    *target = sp_xasprintf("rbd:%s%s%s", s.pool, s.ns ? "/" : "", s.ns ? s.ns : "");
  if (rc == 0) {
    snprintf(uuid, SP_UUID_LEN + 1, "%s", s.image);
    snprintf(p->id, sizeof p->id, "%s", s.snap);
  }
  sp_rbd_spec_free(&s);
  return rc;
}

/* The manifest as committed: point.ID must exist (a pending run is no
 * point) and the manifest object must hash to its record. */
static int load_manifest(struct rbd_point *p, char **text, size_t *len, struct sp_err *e)
{
  struct sp_rados_listing l;
  if (sp_rados_list(&p->t.store, &l, e) < 0)
    return -1;
  const struct sp_rados_point *found = NULL;
  for (size_t i = 0; i < l.n; i++)
    if (strcmp(l.points[i].id, p->id) == 0)
      found = &l.points[i];
  bool pending = false;
  for (size_t i = 0; i < l.npending; i++)
    pending |= strcmp(l.pending[i], p->id) == 0;
  int rc = found ? sp_rados_get_manifest(&p->t.store, found, text, len, e)
           : sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: %s", p->name,
                        pending ? "an incomplete point (not committed): its run failed or is "
                                  "still running; the next backup or prune removes it"
                                : "no such point (stillpoint list DOMAIN --target ... shows "
                                  "the points)");
  sp_rados_listing_free(&l);
  if (rc < 0 && e->code == SP_EXIT_FAILED)
    e->code = SP_EXIT_PREFLIGHT;
  return rc;
}

int rbd_point_open(struct rbd_point *p, const struct sp_config *cfg, const char *arg,
                   const struct sp_log *log, struct sp_err *e)
{
  _cleanup_free_ char *target = NULL, *text = NULL, *sums = NULL;
  char uuid[SP_UUID_LEN + 1], hex[SP_SHA256_HEX_LEN + 1];
  size_t len = 0, slen = 0;
  if (parse(p, arg, &target, uuid, e) < 0)
    return -1;
  p->name = sp_xstrdup(arg);
  if (rbd_target_connect(&p->t, cfg, target, log, e) < 0 ||
      rbd_target_open_store(&p->t, uuid, e) < 0)
    return sp_err_prefix(e, "%s", p->name);
  if (load_manifest(p, &text, &len, e) < 0)
    return -1;
  if (sp_manifest_parse(text, len, &p->m, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s: manifest.json", p->name);
  if (p->m.format != SP_MANIFEST_FORMAT_RBD || strcmp(p->m.uuid, uuid) ||
      strcmp(p->m.id, p->id))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: manifest.json is not this Ceph point (format "
                      "%d, UUID %s, id %s)", p->name, p->m.format, p->m.uuid, p->m.id);
  if (sp_rados_get(&p->t.store, p->id, "SHA256SUMS", &sums, &slen, e) < 0 ||
      sp_sums_parse(sums, slen, &p->sums, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s: SHA256SUMS", p->name);
  sp_sha256_hex(text, len, hex);
  const char *want = sp_sums_find(&p->sums, "manifest.json");
  if (!want || strcmp(want, hex) != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: SHA256SUMS does not list the committed "
                      "manifest.json: the point is damaged (stillpoint verify %s)", p->name,
                      p->name);
  return 0;
}

void rbd_point_close(struct rbd_point *p)
{
  sp_manifest_free(&p->m);
  sp_sums_free(&p->sums);
  rbd_target_close(&p->t);
  free(p->name);
  p->name = NULL;
}

int rbd_point_read(struct rbd_point *p, const char *rel, char **data, size_t *len,
                   struct sp_err *e)
{
  char hex[SP_SHA256_HEX_LEN + 1];
  const char *want = sp_sums_find(&p->sums, rel);
  if (!want)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s is not listed in SHA256SUMS: refusing it",
                      p->name, rel);
  if (sp_rados_get(&p->t.store, p->id, rel, data, len, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s", p->name);
  sp_sha256_hex(*data, *len, hex);
  if (strcmp(hex, want) != 0) {
    free(*data);
    *data = NULL;
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s does not match its SHA-256 in SHA256SUMS: "
                      "the point is damaged or was changed", p->name, rel);
  }
  return 0;
}

/* One state file into b (name: its name in the manifest), checked
 * against the manifest too. */
static int state_file(struct rbd_point *p, const char *rel, const struct sp_manifest_file *f,
                      struct sp_blob *b, struct sp_err *e)
{
  char *data = NULL;
  size_t len = 0;
  if (rbd_point_read(p, rel, &data, &len, e) < 0)
    return -1;
  *b = (struct sp_blob){ .name = sp_xstrdup(f->name), .data = (unsigned char *)data,
                         .len = len, .mode = 0600 };
  sp_sha256_hex(data, len, b->sha256);
  if (strcmp(b->sha256, f->sha256) != 0 || (long long)len != f->size)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s does not match its SHA-256 and size in the "
                      "manifest: the point is damaged", p->name, rel);
  return 0;
}

int rbd_point_nvram(struct rbd_point *p, struct sp_blob *b, struct sp_err *e)
{
  memset(b, 0, sizeof *b);
  if (p->m.nvram.nfiles != 1)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: the manifest lists %zu NVRAM files, not one",
                      p->name, p->m.nvram.nfiles);
  return state_file(p, p->m.nvram.path, &p->m.nvram.files[0], b, e);
}

int rbd_point_tpm(struct rbd_point *p, struct sp_tree *t, struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  t->files = sp_xcalloc(p->m.tpm.nfiles ? p->m.tpm.nfiles : 1, sizeof *t->files);
  for (size_t i = 0; i < p->m.tpm.nfiles; i++) {
    _cleanup_free_ char *rel = sp_path_join(p->m.tpm.path, p->m.tpm.files[i].name);
    int rc = state_file(p, rel, &p->m.tpm.files[i], &t->files[i], e);
    t->n = i + 1;
    if (rc < 0)
      return -1;
  }
  sp_tree_finish(t);
  return 0;
}

static void image_close(rbd_image_t *img)
{
  if (*img)
    rbd_close(*img);
}

int rbd_point_snap_check(struct rbd_point *p, const struct sp_manifest_disk *d,
                         struct sp_err *e)
{
  _cleanup_(image_close) rbd_image_t img = NULL;
  uint64_t size = 0;
  int rc = rbd_open_read_only(p->t.store.io, d->rbd_image, &img, d->rbd_snapshot);
  if (rc < 0) {
    img = NULL;
    return rc == -ENOENT
             ? sp_err_set(e, SP_EXIT_FAILED, "disk %s: snapshot %s@%s is missing", d->target,
                          d->rbd_image, d->rbd_snapshot)
             : sp_err_sys(e, SP_EXIT_FAILED, -rc, "disk %s: opening %s@%s", d->target,
                          d->rbd_image, d->rbd_snapshot);
  }
  if ((rc = rbd_get_size(img, &size)) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "disk %s: the size of %s@%s", d->target,
                      d->rbd_image, d->rbd_snapshot);
  if (size != d->size)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: snapshot %s@%s is %llu bytes, the manifest "
                      "says %llu", d->target, d->rbd_image, d->rbd_snapshot,
                      (unsigned long long)size, d->size);
  return 0;
}

/* ':' separates QEMU's rbd: options and '\' escapes: a path with either
 * (or '@') is refused rather than escaped. */
static bool qemu_opt_ok(const char *s)
{
  return !s || !strpbrk(s, ":@\\=");
}

char *rbd_point_qemu_source(const struct rbd_point *p, const struct sp_manifest_disk *d,
                            struct sp_err *e)
{
  const struct rbd_target *t = &p->t;
  if (!qemu_opt_ok(t->conf) || !qemu_opt_ok(t->keyring) || !qemu_opt_ok(t->user)) {
    sp_err_set(e, SP_EXIT_USAGE, "ceph_conf, ceph_keyring and ceph_user must not hold ':', '@', "
               "'=' or '\\' (QEMU's rbd: file names cannot carry them): move the files");
    return NULL;
  }
  unsigned to = t->timeout_s ? t->timeout_s : 60;
  return sp_xasprintf("rbd:%s/%s%s%s@%s%s%s%s%s%s%s:rados_osd_op_timeout=%u"
                      ":rados_mon_op_timeout=%u:client_mount_timeout=%u", t->pool,
                      t->ns ? t->ns : "", t->ns ? "/" : "", d->rbd_image, d->rbd_snapshot,
                      t->user ? ":id=" : "", t->user ? t->user : "", t->conf ? ":conf=" : "",
                      t->conf ? t->conf : "", t->keyring ? ":keyring=" : "",
                      t->keyring ? t->keyring : "", to, to, to);
}
