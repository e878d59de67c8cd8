#include "rados_points.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ceph_lib.h"
#include "ceph_client.h"
#include "cleanup.h"
#include "point_layout.h"
#include "sha256.h"
#include "strv.h"
#include "xalloc.h"

#define MAX_ITEMS 8192 /* intents per operation: far more than a point has files */


int sp_rados_store_open(rados_t cluster, const char *pool, const char *ns, const char *uuid,
                        struct sp_rados_store *s, struct sp_err *e)
{
  *s = (struct sp_rados_store){ 0 };
  if (!(s->vm_obj = sp_rados_vm_object(uuid)))
    return sp_err_set(e, SP_EXIT_USAGE, "'%s' is not a domain UUID", uuid);
  strcpy(s->uuid, uuid);
  int rc = rados_ioctx_create(cluster, pool, &s->io);
  if (rc < 0) {
    s->io = NULL;
    sp_rados_store_close(s); /* the caller closes only a store that opened */
    return sp_err_sys(e, SP_EXIT_FAILED, -rc,
                      "Ceph pool %s (does it exist, and may this client use it?)", pool);
  }
  rados_ioctx_set_namespace(s->io, ns);
  return 0;
}

void sp_rados_store_close(struct sp_rados_store *s)
{
  struct sp_err ignored = { 0 };
  if (s->locked)
    sp_rados_unlock(s, &ignored);
  if (s->io)
    rados_ioctx_destroy(s->io);
  free(s->vm_obj);
  *s = (struct sp_rados_store){ 0 };
}

/* -- the lock ------------------------------------------------------------- */

/* "holder (client.N at ADDR)" of the lock, or why it is unknown. */
static void describe_holder(struct sp_rados_store *s, char *out, size_t n)
{
  char tag[256], clients[512], cookies[1024], addrs[512];
  size_t tl = sizeof tag, cl = sizeof clients, kl = sizeof cookies, al = sizeof addrs;
  int excl = 0;
  ssize_t count = rados_list_lockers(s->io, s->vm_obj, SP_RADOS_LOCK, &excl, tag, &tl, clients,
                                     &cl, cookies, &kl, addrs, &al);
  if (count <= 0)
    snprintf(out, n, "someone (the lock was released meanwhile: try again)");
  else
    snprintf(out, n, "%.300s (client %.100s at %.100s)", cookies, clients, addrs);
}

static int lock_op(struct sp_rados_store *s, const char *cookie, uint8_t flags)
{
  struct timeval lease = { .tv_sec = SP_RADOS_LEASE_S };
  return rados_lock_exclusive(s->io, s->vm_obj, SP_RADOS_LOCK, cookie, "stillpoint VM lock",
                              &lease, flags);
}

int sp_rados_lock(struct sp_rados_store *s, const char *holder, struct sp_err *e)
{
  if (!holder || !*holder || strlen(holder) > SP_RADOS_HOLDER_MAX)
    return sp_err_set(e, SP_EXIT_USAGE, "lock holder: 1 to %d bytes", SP_RADOS_HOLDER_MAX);
  int rc = lock_op(s, holder, 0);
  if (rc == -EBUSY || rc == -EEXIST) {
    char who[2048];
    describe_holder(s, who, sizeof who);
    return sp_err_set(e, SP_EXIT_FAILED,
                      "domain %s is busy: its lock in Ceph is held by %s; it expires %d s after "
                      "its holder stops renewing it",
                      s->uuid, who, SP_RADOS_LEASE_S);
  }
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "locking %s", s->vm_obj);
  strcpy(s->holder, holder);
  s->locked = true;
  /* The fencing token: a run whose lease expired and was taken over can
   * no longer commit, since the commit compares this xattr. */
  rc = rados_setxattr(s->io, s->vm_obj, SP_RADOS_HOLDER_XATTR, holder, strlen(holder));
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "marking the holder of %s", s->vm_obj);
  return 0;
}

int sp_rados_lock_holder(struct sp_rados_store *s, char *cookie, size_t cn, char *client,
                         size_t cln, struct sp_err *e)
{
  char tag[256], clients[512], cookies[1024], addrs[512];
  size_t tl = sizeof tag, cl = sizeof clients, kl = sizeof cookies, al = sizeof addrs;
  int excl = 0;
  cookie[0] = client[0] = '\0';
  ssize_t count = rados_list_lockers(s->io, s->vm_obj, SP_RADOS_LOCK, &excl, tag, &tl, clients,
                                     &cl, cookies, &kl, addrs, &al);
  if (count == -ENOENT || count == 0)
    return 0;
  if (count < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, (int)-count, "reading the lock of %s", s->vm_obj);
  snprintf(cookie, cn, "%.*s", (int)strnlen(cookies, kl), cookies);
  snprintf(client, cln, "%.*s", (int)strnlen(clients, cl), clients);
  return 0;
}

int sp_rados_lock_break(struct sp_rados_store *s, const char *client, const char *cookie,
                        struct sp_err *e)
{
  int rc = rados_break_lock(s->io, s->vm_obj, SP_RADOS_LOCK, client, cookie);
  if (rc < 0 && rc != -ENOENT)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "breaking the lock of %s held by %s", s->vm_obj,
                      cookie);
  return 0;
}

int sp_rados_lock_renew(struct sp_rados_store *s, struct sp_err *e)
{
  int rc = s->locked ? lock_op(s, s->holder, LIBRADOS_LOCK_FLAG_MUST_RENEW) : -ENOLCK;
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc,
                      "renewing the lock of domain %s (lost: someone took it after it expired)",
                      s->uuid);
  return 0;
}

int sp_rados_unlock(struct sp_rados_store *s, struct sp_err *e)
{
  if (!s->locked)
    return 0;
  s->locked = false;
  int rc = rados_unlock(s->io, s->vm_obj, SP_RADOS_LOCK, s->holder);
  if (rc < 0 && rc != -ENOENT)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "unlocking %s", s->vm_obj);
  return 0;
}

/* -- writing -------------------------------------------------------------- */

/* Pending keys of items, appended to keys. */
static int pending_keys(const char *id, const char *const *items, size_t n,
                        struct sp_strv *keys, struct sp_err *e)
{
  if (n > MAX_ITEMS)
    return sp_err_set(e, SP_EXIT_FAILED, "%zu items in one point: too many", n);
  for (size_t i = 0; i < n; i++) {
    char *k = sp_rados_pending_key(id, items[i]);
    if (!k)
      return sp_err_set(e, SP_EXIT_FAILED, "point %s: bad item '%s'", id, items[i]);
    sp_strv_push_take(keys, k);
  }
  return 0;
}

static void set_keys(rados_write_op_t op, char **keys, size_t n, const char *val)
{
  _cleanup_free_ const char **vals = calloc(n ? n : 1, sizeof *vals);
  _cleanup_free_ size_t *klen = calloc(n ? n : 1, sizeof *klen);
  _cleanup_free_ size_t *vlen = calloc(n ? n : 1, sizeof *vlen);
  if (!keys || !vals || !klen || !vlen)
    return; /* the caller's operation then lacks them: checked by n_set */
  for (size_t i = 0; i < n; i++) {
    vals[i] = val;
    klen[i] = strlen(keys[i]);
    vlen[i] = strlen(val);
  }
  rados_write_op_omap_set2(op, (const char *const *)keys, vals, klen, vlen, n);
}

int sp_rados_intend(struct sp_rados_store *s, const char *id, const char *const *items,
                    size_t n, struct sp_err *e)
{
  _cleanup_(sp_strv_free) struct sp_strv keys = SP_STRV_INIT;
  if (pending_keys(id, items, n, &keys, e) < 0)
    return -1;
  _cleanup_wop_ rados_write_op_t op = rados_create_write_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "intents");
  set_keys(op, keys.v, keys.n, "");
  int rc = rados_write_op_operate2(op, s->io, s->vm_obj, NULL, 0);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "recording what point %s writes", id);
  return 0;
}

int sp_rados_put(struct sp_rados_store *s, const char *id, const char *path, const void *data,
                 size_t len, struct sp_err *e)
{
  _cleanup_free_ char *oid = sp_rados_point_object(s->uuid, id, path);
  if (!oid)
    return sp_err_set(e, SP_EXIT_FAILED, "point %s: bad file name '%s'", id, path);
  const char *items[] = { path };
  if (sp_rados_intend(s, id, items, 1, e) < 0)
    return -1;
  int rc = rados_write_full(s->io, oid, data, len);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "writing %s", oid);
  return 0;
}

/* The range of pending.ID.* keys: [pending.ID., pending.ID/) ('/' follows '.'). */
static void pending_range(const char *id, char *lo, char *hi, size_t n)
{
  snprintf(lo, n, SP_RADOS_KEY_PENDING "%s.", id);
  snprintf(hi, n, SP_RADOS_KEY_PENDING "%s/", id);
}

/* Runs op on the VM's index if we still hold its lock (the holder xattr
 * is ours); what and id word the errors ("committing point ID").  0, or
 * librados's negative result with e set (the commit judges it). */
static int guarded(struct sp_rados_store *s, rados_write_op_t op, const char *what,
                   const char *id, struct sp_err *e)
{
  if (!s->locked)
    return sp_err_set(e, SP_EXIT_FAILED, "%s point %s without the domain's lock", what, id),
           -ECANCELED;
  rados_write_op_cmpxattr(op, SP_RADOS_HOLDER_XATTR, LIBRADOS_CMPXATTR_OP_EQ, s->holder,
                          strlen(s->holder));
  int rc = rados_write_op_operate2(op, s->io, s->vm_obj, NULL, 0);
  if (rc == -ECANCELED || rc == -ENODATA)
    sp_err_set(e, SP_EXIT_FAILED,
               "%s point %s: the domain's lock was taken over (our lease expired); "
               "nothing was changed",
               what, id);
  else if (rc < 0)
    sp_err_sys(e, SP_EXIT_FAILED, -rc, "%s point %s", what, id);
  return rc < 0 ? rc : 0;
}

int sp_rados_commit(struct sp_rados_store *s, const char *id,
                    const struct sp_commit_record *rec, struct sp_err *e)
{
  _cleanup_free_ char *key = sp_rados_point_key(id);
  char val[SP_RADOS_RECORD_MAX], lo[64], hi[64];
  if (!key || sp_commit_record_format(rec, val, sizeof val) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "committing point %s: bad id or record", id), -EINVAL;
  pending_range(id, lo, hi, sizeof lo);
  _cleanup_wop_ rados_write_op_t op = rados_create_write_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "commit"), -ENOMEM;
  const char *keys[] = { key }, *vals[] = { val };
  const size_t kl[] = { strlen(key) }, vl[] = { strlen(val) };
  rados_write_op_omap_set2(op, keys, vals, kl, vl, 1);
  rados_write_op_omap_rm_range2(op, lo, strlen(lo), hi, strlen(hi));
  return guarded(s, op, "committing", id, e);
}

enum sp_commit_outcome sp_rados_commit_read(struct sp_rados_store *s, const char *id,
                                            const struct sp_commit_record *rec,
                                            struct sp_err *e)
{
  _cleanup_free_ char *key = sp_rados_point_key(id);
  if (!key)
    return sp_err_set(e, SP_EXIT_FAILED, "'%s' is not a point id", id), SP_COMMIT_UNKNOWN;
  _cleanup_rop_ rados_read_op_t op = rados_create_read_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading the commit back"), SP_COMMIT_UNKNOWN;
  const char *keys[] = { key };
  const size_t kl[] = { strlen(key) };
  rados_omap_iter_t it = NULL;
  int prval = 0;
  rados_read_op_omap_get_vals_by_keys2(op, keys, 1, kl, &it, &prval);
  int rc = rados_read_op_operate(op, s->io, s->vm_obj, 0);
  if (rc == 0 && prval < 0)
    rc = prval;
  char *k = NULL, *v = NULL;
  size_t klen = 0, vlen = 0;
  if (rc == 0 && (rados_omap_get_next2(it, &k, &v, &klen, &vlen) < 0 || !k))
    rc = -ENOENT; /* the index answered without the key */
  enum sp_commit_outcome o = sp_commit_readback(rc, v, vlen, rec);
  if (o == SP_COMMIT_UNKNOWN)
    sp_err_sys(e, SP_EXIT_FAILED, -rc, "reading %s of %s back", key, s->vm_obj);
  if (it)
    rados_omap_get_end(it);
  return o;
}

int sp_rados_register(struct sp_rados_store *s, const char *domain, struct sp_err *e)
{
  _cleanup_wop_ rados_write_op_t op = rados_create_write_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "register");
  const char *keys[] = { s->uuid }, *vals[] = { domain };
  const size_t kl[] = { strlen(s->uuid) }, vl[] = { strlen(domain) };
  rados_write_op_omap_set2(op, keys, vals, kl, vl, 1);
  int rc = rados_write_op_operate2(op, s->io, SP_RADOS_VMS, NULL, 0);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "recording domain %s in " SP_RADOS_VMS, domain);
  return 0;
}

/* -- reading -------------------------------------------------------------- */

typedef int omap_fn(void *ud, const char *key, const char *val, size_t vlen,
                    struct sp_err *e);

/* Every key of the VM's index, in order, in pages; a missing index is
 * empty.  Keys that are not text (a NUL inside) are skipped, but paging
 * still goes on after them. */
static int omap_walk(struct sp_rados_store *s, omap_fn *fn, void *ud, struct sp_err *e)
{
  _cleanup_free_ char *after = sp_xstrdup("");
  for (;;) {
    _cleanup_rop_ rados_read_op_t op = rados_create_read_op();
    if (!op)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "index");
    rados_omap_iter_t it = NULL;
    unsigned char more = 0;
    int prval = 0;
    rados_read_op_omap_get_vals2(op, after, "", 512, &it, &more, &prval);
    int rc = rados_read_op_operate(op, s->io, s->vm_obj, 0);
    if (rc == -ENOENT)
      return 0;
    if (rc < 0 || prval < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, rc < 0 ? -rc : -prval, "reading %s", s->vm_obj);
    char *k, *v;
    size_t kl, vl;
    int out = 0;
    bool any = false;
    while (out == 0 && rados_omap_get_next2(it, &k, &v, &kl, &vl) == 0 && k) {
      any = true;
      char *key = sp_xstrndup(k, kl);
      free(after);
      after = key;
      if (strlen(key) == kl)
        out = fn(ud, key, v, vl, e);
    }
    rados_omap_get_end(it);
    if (out < 0)
      return -1;
    if (!more || !any)
      return 0;
  }
}

static int list_one(void *ud, const char *key, const char *val, size_t vlen, struct sp_err *e)
{
  struct sp_rados_listing *l = ud;
  struct sp_rados_key k;
  if (!sp_rados_key_parse(key, &k))
    return 0; /* not a key of ours: ignored, as unknown names in a directory */
  if (k.kind == 'p') {
    l->points = sp_xreallocarray(l->points, l->n + 1, sizeof *l->points);
    struct sp_rados_point *p = &l->points[l->n];
    strcpy(p->id, k.id);
    if (sp_commit_record_parse(val, vlen, &p->rec, e) < 0)
      return sp_err_prefix(e, "point %s", k.id);
    l->n++;
    return 0;
  }
  if (l->npending && !strcmp(l->pending[l->npending - 1], k.id))
    return 0; /* keys are sorted: one entry per id */
  l->pending = sp_xreallocarray(l->pending, l->npending + 1, sizeof *l->pending);
  strcpy(l->pending[l->npending++], k.id);
  return 0;
}

int sp_rados_list(struct sp_rados_store *s, struct sp_rados_listing *out, struct sp_err *e)
{
  *out = (struct sp_rados_listing){ 0 };
  if (omap_walk(s, list_one, out, e) < 0) {
    sp_rados_listing_free(out);
    return -1;
  }
  return 0;
}

void sp_rados_listing_free(struct sp_rados_listing *l)
{
  free(l->points);
  free(l->pending);
  *l = (struct sp_rados_listing){ 0 };
}

int sp_rados_get(struct sp_rados_store *s, const char *id, const char *path, char **data,
                 size_t *len, struct sp_err *e)
{
  *data = NULL;
  *len = 0;
  _cleanup_free_ char *oid = sp_rados_point_object(s->uuid, id, path);
  if (!oid)
    return sp_err_set(e, SP_EXIT_FAILED, "point %s: bad file name '%s'", id, path);
  uint64_t size = 0;
  time_t mtime;
  int rc = rados_stat(s->io, oid, &size, &mtime);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "%s", oid);
  if (size > SP_RADOS_OBJECT_MAX)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %llu bytes, more than a point file may have", oid,
                      (unsigned long long)size);
  _cleanup_free_ char *buf = sp_xmalloc(size ? size : 1);
  size_t got = 0;
  while (got < size) {
    rc = rados_read(s->io, oid, buf + got, size - got, got);
    if (rc < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, -rc, "reading %s", oid);
    if (rc == 0)
      return sp_err_set(e, SP_EXIT_FAILED, "%s shrank while read", oid);
    got += (size_t)rc;
  }
  *data = steal_pointer(&buf);
  *len = size;
  return 0;
}

int sp_rados_get_manifest(struct sp_rados_store *s, const struct sp_rados_point *p, char **data,
                          size_t *len, struct sp_err *e)
{
  if (sp_rados_get(s, p->id, "manifest.json", data, len, e) < 0)
    return -1;
  char hex[SP_SHA256_HEX_LEN + 1];
  if (*len != p->rec.size || sp_sha256_hex(*data, *len, hex) < 0 || strcmp(hex, p->rec.sha256)) {
    free(*data);
    *data = NULL;
    return sp_err_set(e, SP_EXIT_FAILED,
                      "point %s: manifest.json is not the one committed (size or SHA-256 "
                      "differs): the point was changed after it was taken",
                      p->id);
  }
  return 0;
}

/* -- removing ------------------------------------------------------------- */

int sp_rados_uncommit(struct sp_rados_store *s, const char *id, const char *const *items,
                      size_t n, struct sp_err *e)
{
  _cleanup_free_ char *key = sp_rados_point_key(id);
  _cleanup_(sp_strv_free) struct sp_strv keys = SP_STRV_INIT;
  if (!key)
    return sp_err_set(e, SP_EXIT_FAILED, "'%s' is not a point id", id);
  if (pending_keys(id, items, n, &keys, e) < 0)
    return -1;
  _cleanup_wop_ rados_write_op_t op = rados_create_write_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "uncommit");
  const char *rm[] = { key };
  const size_t rml[] = { strlen(key) };
  rados_write_op_omap_rm_keys2(op, rm, rml, 1);
  set_keys(op, keys.v, keys.n, "");
  return guarded(s, op, "removing", id, e) < 0 ? -1 : 0;
}

static int collect_pending(void *ud, const char *key, const char *val, size_t vlen,
                           struct sp_err *e)
{
  (void)e;
  struct sp_rados_key k;
  if (sp_rados_key_parse(key, &k) && k.kind == 'i')
    sp_strv_push(ud, key);
  return 0;
}

/* Whether image has a user snapshot (rbd_snap_list lists the trash's
 * too: a removed snapshot that clones still need); when in doubt, yes. */
static bool has_user_snaps(struct sp_rados_store *s, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(s->io, name, &img, NULL) < 0)
    return true;
  rbd_snap_info_t snaps[64];
  int max = 64;
  int n = rbd_snap_list(img, snaps, &max);
  bool user = n != 0;
  if (n > 0) {
    user = false;
    for (int i = 0; i < n && !user; i++) {
      rbd_snap_namespace_type_t type;
      user = rbd_snap_get_namespace_type(img, snaps[i].id, &type) < 0 ||
             type == RBD_SNAP_NAMESPACE_TYPE_USER;
    }
    rbd_snap_list_end(snaps);
  }
  rbd_close(img);
  return user;
}

/* The clones that still need image's removed snapshots, as
 * "POOL[/NS]/NAME" joined by ", " (malloc'd; NULL when none can be
 * listed).  rbd_list_descendants on the head covers every snapshot,
 * those in the snapshot trash too. */
static char *clones_of(struct sp_rados_store *s, const char *name)
{
  rbd_image_t img;
  if (rbd_open_read_only(s->io, name, &img, NULL) < 0)
    return NULL;
  rbd_linked_image_spec_t *specs = NULL;
  size_t max = 8, n = 0;
  int rc;
  for (;;) {
    specs = sp_xreallocarray(specs, max, sizeof *specs);
    n = max;
    rc = rbd_list_descendants(img, specs, &n);
    if (rc != -ERANGE || max >= 4096)
      break;
    max = n > max ? n : max * 2;
  }
  rbd_close(img);
  char *list = NULL;
  for (size_t i = 0; rc >= 0 && i < n; i++) {
    const rbd_linked_image_spec_t *c = &specs[i];
    char *next = sp_xasprintf("%s%s%s%s%s/%s%s", list ? list : "", list ? ", " : "",
                              c->pool_name, c->pool_namespace[0] ? "/" : "",
                              c->pool_namespace, c->image_name,
                              c->trash ? " (in the RBD trash)" : "");
    free(list);
    list = next;
  }
  if (rc >= 0)
    rbd_linked_image_spec_list_cleanup(specs, n);
  free(specs);
  return list;
}

/* Removes what one intent names; what is already gone is fine.  1: the
 * item must stay for now (an image a dead client still watches, or one
 * whose removed snapshots clones need), so its intent stays too and a
 * later run removes it; *why then says which and what to do. */
static int remove_item(struct sp_rados_store *s, const struct sp_rados_key *k, char **why,
                       struct sp_err *e)
{
  if (k->item[0] != '@') {
    _cleanup_free_ char *oid = sp_rados_point_object(s->uuid, k->id, k->item);
    int rc = oid ? rados_remove(s->io, oid) : -EINVAL;
    if (rc < 0 && rc != -ENOENT)
      return sp_err_sys(e, SP_EXIT_FAILED, -rc, "removing %s", oid ? oid : k->item);
    return 0;
  }
  const char *image = k->item + 1;
  const char *at = strchr(image, '@');
  _cleanup_free_ char *name = sp_xstrndup(image, at ? (size_t)(at - image) : strlen(image));
  if (at) {
    rbd_image_t img;
    int rc = rbd_open(s->io, name, &img, NULL);
    if (rc == -ENOENT)
      return 0;
    if (rc < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, -rc, "opening RBD image %s", name);
    rc = rbd_snap_remove(img, at + 1);
    rbd_close(img);
    if (rc < 0 && rc != -ENOENT)
      return sp_err_sys(e, SP_EXIT_FAILED, -rc, "removing snapshot %s@%s", name, at + 1);
    return 0;
  }
  int rc = rbd_remove(s->io, name);
  /* Still watched: a copier that died without closing it (its OSD was
   * gone) keeps a watch until the OSD times it out (30 s by default).
   * Dropping the intent now would leak the image. */
  if (rc == -EBUSY) {
    *why = sp_xasprintf("RBD image %s stays for now: a client still has it open (one that "
                        "died keeps its watch until the OSD times it out, 30 s); the next "
                        "backup or prune of this VM removes it", name);
    return 1;
  }
  /* Snapshots of other points: the image is theirs now, the intent goes
   * (pruning them names it again).  No snapshot left but still refused:
   * a removed snapshot waits in the trash for its clones (restore
   * --instant, clone format 2), so the intent stays and a later run
   * removes the image once the clones are removed or flattened. */
  if (rc == -ENOTEMPTY && !has_user_snaps(s, name)) {
    _cleanup_free_ char *clones = clones_of(s, name);
    *why = sp_xasprintf("RBD image %s stays: its removed snapshots are still the base of "
                        "the clone%s %s - a VM started by stillpoint restore --instant "
                        "runs on them. To keep that VM, flatten each clone (rbd flatten "
                        "POOL/CLONE); else remove the VM and its clones (stillpoint(1), "
                        "restore --instant). The next backup or prune of this VM then "
                        "removes the image", name, clones && strchr(clones, ',') ? "s" : "",
                        clones ? clones : "(which could not be listed: rbd children --all "
                        "names them)");
    return 1;
  }
  if (rc < 0 && rc != -ENOENT && rc != -ENOTEMPTY)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "removing RBD image %s", name);
  return 0;
}

int sp_rados_cleanup(struct sp_rados_store *s, size_t *removed, struct sp_strv *kept,
                     struct sp_err *e)
{
  *removed = 0;
  if (!s->locked)
    return sp_err_set(e, SP_EXIT_FAILED, "cleaning up domain %s without its lock", s->uuid);
  _cleanup_(sp_strv_free) struct sp_strv keys = SP_STRV_INIT;
  if (omap_walk(s, collect_pending, &keys, e) < 0)
    return -1;
  /* Snapshots before images (an image with snapshots cannot go), objects
   * in any order: three passes over the sorted keys. */
  for (int pass = 0; pass < 3; pass++)
    for (size_t i = 0; i < keys.n; i++) {
      struct sp_rados_key k;
      if (!sp_rados_key_parse(keys.v[i], &k))
        continue;
      const bool image = k.item[0] == '@';
      const int kind = !image ? 2 : strchr(k.item + 1, '@') ? 0 : 1;
      if (kind != pass)
        continue;
      char *why = NULL;
      int r = remove_item(s, &k, &why, e);
      if (r < 0)
        return -1;
      if (r == 0) {
        (*removed)++;
        continue;
      }
      /* Kept with its intent: out of the list of keys removed below
       * (the move takes the terminating NULL along). */
      free(keys.v[i]);
      memmove(keys.v + i, keys.v + i + 1, (keys.n - i) * sizeof *keys.v);
      keys.n--;
      i--;
      sp_strv_push_take(kept, why);
    }
  if (!keys.n)
    return 0;
  _cleanup_wop_ rados_write_op_t op = rados_create_write_op();
  if (!op)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "cleanup");
  _cleanup_free_ size_t *kl = sp_xcalloc(keys.n, sizeof *kl);
  for (size_t i = 0; i < keys.n; i++)
    kl[i] = strlen(keys.v[i]);
  rados_write_op_omap_rm_keys2(op, (const char *const *)keys.v, kl, keys.n);
  return guarded(s, op, "cleaning up", "leftovers of failed runs", e) < 0 ? -1 : 0;
}
