#include "rbd_target.h"

#include <errno.h>
#include <rbd/librbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ceph_client.h"
#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "rbd_spec.h"
#include "sha256.h"

bool rbd_target_is(const char *target)
{
  return target && strncmp(target, SP_RBD_PREFIX, strlen(SP_RBD_PREFIX)) == 0;
}

int rbd_target_parse(const char *target, char **pool, char **ns, struct sp_err *e)
{
  *pool = *ns = NULL;
  const char *p = target + strlen(SP_RBD_PREFIX);
  const char *slash = strchr(p, '/');
  size_t pl = slash ? (size_t)(slash - p) : strlen(p);
  const char *n = slash ? slash + 1 : NULL;
  if (!rbd_target_is(target) || !sp_rbd_name_ok(p, pl) || (n && !sp_rbd_name_ok(n, strlen(n))))
    return sp_err_set(e, SP_EXIT_USAGE,
                      "target %s: expected rbd:POOL or rbd:POOL/NAMESPACE, each a name of "
                      "letters, digits, '.', '_' and '-'", target);
  if (!(*pool = strndup(p, pl)) || (n && !(*ns = strdup(n)))) {
    free(*pool);
    *pool = NULL;
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "target");
  }
  return 0;
}

static char *opt_dup(const struct sp_config *cfg, enum sp_key k, bool *oom)
{
  const char *v = sp_config_str(cfg, k);
  if (!v || !*v)
    return NULL;
  char *s = strdup(v);
  if (!s)
    *oom = true;
  return s;
}

int rbd_target_connect(struct rbd_target *t, const struct sp_config *cfg, const char *target,
                       const struct sp_log *log, struct sp_err *e)
{
  t->log = log;
  if (rbd_target_parse(target ? target : sp_config_str(cfg, SP_KEY_TARGET), &t->pool, &t->ns,
                       e) < 0)
    return -1;
  bool oom = false;
  t->conf = opt_dup(cfg, SP_KEY_CEPH_CONF, &oom);
  t->user = opt_dup(cfg, SP_KEY_CEPH_USER, &oom);
  t->keyring = opt_dup(cfg, SP_KEY_CEPH_KEYRING, &oom);
  t->timeout_s = (unsigned)sp_config_int(cfg, SP_KEY_CEPH_TIMEOUT_S);
  if (oom)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "target");
  struct sp_ceph_opts o = { .conf = t->conf, .user = t->user, .keyring = t->keyring,
                            .timeout_s = t->timeout_s };
  return sp_ceph_connect(&o, &t->cluster, e);
}

int rbd_target_open_store(struct rbd_target *t, const char *uuid, struct sp_err *e)
{
  if (sp_rados_store_open(t->cluster, t->pool, t->ns, uuid, &t->store, e) < 0)
    return -1;
  t->store_open = true;
  return 0;
}

int rbd_target_open(struct rbd_target *t, const struct sp_config *cfg, const char *uuid,
                    const struct sp_log *log, struct sp_err *e)
{
  return rbd_target_connect(t, cfg, NULL, log, e) < 0 ? -1 : rbd_target_open_store(t, uuid, e);
}

static int add_uuid(char ***uuids, size_t *n, const char *u)
{
  char **v = reallocarray(*uuids, *n + 1, sizeof *v);
  if (!v)
    return -1;
  *uuids = v;
  if (!(v[*n] = strdup(u)))
    return -1;
  ++*n;
  return 0;
}

int rbd_target_find_domain(struct rbd_target *t, const char *name, char ***uuids, size_t *n,
                           struct sp_err *e)
{
  *uuids = NULL;
  *n = 0;
  _cleanup_ioctx_ rados_ioctx_t io = NULL;
  if (sp_ceph_ioctx(t->cluster, t->pool, t->ns, &io, e) < 0)
    return -1;
  /* The directory of domains; a UUID given as the name is taken as is. */
  if (sp_uuid_ok(name) && add_uuid(uuids, n, name) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domains");
  char after[SP_UUID_LEN + 1] = "";
  for (;;) {
    _cleanup_rop_ rados_read_op_t op = rados_create_read_op();
    if (!op)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domains");
    rados_omap_iter_t it = NULL;
    unsigned char more = 0;
    int prval = 0;
    rados_read_op_omap_get_vals2(op, after, "", 512, &it, &more, &prval);
    int rc = rados_read_op_operate(op, io, SP_RADOS_VMS, 0);
    if (rc == -ENOENT)
      return 0;
    if (rc < 0 || prval < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, rc < 0 ? -rc : -prval, "reading " SP_RADOS_VMS);
    char *k, *v;
    size_t kl, vl;
    bool any = false;
    while (rados_omap_get_next2(it, &k, &v, &kl, &vl) == 0 && k) {
      any = true;
      if (kl > SP_UUID_LEN)
        continue; /* not a key of ours */
      memcpy(after, k, kl);
      after[kl] = '\0';
      if (sp_uuid_ok(after) && vl == strlen(name) && memcmp(v, name, vl) == 0 &&
          strcmp(after, name) != 0 && add_uuid(uuids, n, after) < 0) {
        rados_omap_get_end(it);
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domains");
      }
    }
    rados_omap_get_end(it);
    if (!more || !any)
      return 0;
  }
}

/* Renews the lease every third of it until told to stop; a renewal that
 * fails is said once, and the commit, fenced by the holder xattr, then
 * fails too if someone else took the lock. */
static void *renew_loop(void *arg)
{
  struct rbd_target *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    at.tv_sec += SP_RADOS_LEASE_S / 3;
    while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &at) != ETIMEDOUT)
      ;
    if (t->stop)
      break;
    struct sp_err e = { 0 };
    if (sp_rados_lock_renew(&t->store, &e) < 0) {
      sp_warn(t->log, "%s", e.msg);
      break;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

int rbd_target_lock(struct rbd_target *t, const char *what, struct sp_err *e)
{
  char host[128] = "", holder[SP_RADOS_HOLDER_MAX + 1], since[32];
  gethostname(host, sizeof host - 1);
  sp_utc_now(since);
  snprintf(holder, sizeof holder, "%s pid %ld %s since %s", host, (long)getpid(), what, since);
  if (sp_rados_lock(&t->store, holder, e) < 0)
    return -1;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (pthread_create(&t->renewer, NULL, renew_loop, t) != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    return sp_err_sys(e, SP_EXIT_FAILED, EAGAIN, "the lease's renewing thread");
  }
  t->renewing = true;
  size_t removed = 0;
  if (sp_rados_cleanup(&t->store, &removed, e) < 0)
    return sp_err_prefix(e, "removing what a failed run left in the pool");
  if (removed)
    sp_info(t->log, "removed %zu leftover%s of failed or pruned points from the pool", removed,
            removed == 1 ? "" : "s");
  return 0;
}

void rbd_target_close_store(struct rbd_target *t)
{
  if (t->renewing) {
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->renewer, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    t->renewing = false;
  }
  if (t->store_open)
    sp_rados_store_close(&t->store);
  t->store_open = false;
  t->stop = false;
}

void rbd_target_close(struct rbd_target *t)
{
  rbd_target_close_store(t);
  if (t->cluster)
    rados_shutdown(t->cluster);
  free(t->pool);
  free(t->ns);
  free(t->conf);
  free(t->user);
  free(t->keyring);
  *t = (struct rbd_target){ 0 };
}

char *rbd_target_spec(const struct rbd_target *t, const char *image, const char *snap)
{
  char *s = NULL;
  if (asprintf(&s, SP_RBD_PREFIX "%s%s%s/%s%s%s", t->pool, t->ns ? "/" : "", t->ns ? t->ns : "",
               image, snap ? "@" : "", snap ? snap : "") < 0)
    return NULL;
  return s;
}

char *rbd_target_point_name(const struct rbd_target *t, const char *id)
{
  return rbd_target_spec(t, t->store.uuid, id);
}

const char *rbd_target_env(const struct rbd_target *t, const char *what, char *buf, size_t n)
{
  if (!strcmp(what, "conf"))
    return t->conf ? t->conf : "";
  if (!strcmp(what, "user"))
    return t->user ? t->user : "";
  if (!strcmp(what, "keyring"))
    return t->keyring ? t->keyring : "";
  snprintf(buf, n, "%u", t->timeout_s);
  return buf;
}

int rbd_target_newest_snap(struct rbd_target *t, const char *image, char *out, size_t n,
                           struct sp_err *e)
{
  out[0] = '\0';
  rbd_image_t img;
  int rc = rbd_open_read_only(t->store.io, image, &img, NULL);
  if (rc == -ENOENT)
    return 1;
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "opening RBD image %s", image);
  int max = 16;
  rbd_snap_info_t *snaps = NULL;
  for (;;) {
    snaps = calloc((size_t)max, sizeof *snaps);
    if (!snaps) {
      rbd_close(img);
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "snapshots");
    }
    rc = rbd_snap_list(img, snaps, &max);
    if (rc != -ERANGE)
      break;
    free(snaps);
  }
  if (rc >= 0) {
    uint64_t best = 0;
    for (int i = 0; i < rc; i++)
      if (snaps[i].id >= best) {
        best = snaps[i].id;
        snprintf(out, n, "%s", snaps[i].name);
      }
    rbd_snap_list_end(snaps);
  }
  free(snaps);
  rbd_close(img);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "listing the snapshots of RBD image %s", image);
  return 0;
}

int rbd_target_load_points(struct rbd_target *t, struct sp_manifest **out, size_t *n,
                           struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  struct sp_rados_listing l;
  if (sp_rados_list(&t->store, &l, e) < 0)
    return -1;
  struct sp_manifest *m = calloc(l.n ? l.n : 1, sizeof *m);
  if (!m) {
    sp_rados_listing_free(&l);
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "points");
  }
  size_t k = 0;
  for (size_t i = 0; i < l.n; i++) {
    _cleanup_free_ char *json = NULL;
    size_t len;
    struct sp_err me = { 0 };
    if (sp_rados_get_manifest(&t->store, &l.points[i], &json, &len, &me) < 0 ||
        sp_manifest_parse(json, len, &m[k], &me) < 0) {
      sp_warn(t->log, "point %s is unreadable and left out: %s", l.points[i].id, me.msg);
      continue;
    }
    if (m[k].format != SP_MANIFEST_FORMAT_RBD || strcmp(m[k].uuid, t->store.uuid) ||
        strcmp(m[k].id, l.points[i].id)) {
      sp_warn(t->log, "point %s: its manifest is not a Ceph point of this domain (format %d, "
              "UUID %s, id %s): left out", l.points[i].id, m[k].format, m[k].uuid, m[k].id);
      sp_manifest_free(&m[k]);
      continue;
    }
    k++;
  }
  sp_rados_listing_free(&l);
  *out = m;
  *n = k;
  return 0;
}

int rbd_target_has_id(struct rbd_target *t, const char *id, bool *taken, struct sp_err *e)
{
  struct sp_rados_listing l;
  *taken = false;
  if (sp_rados_list(&t->store, &l, e) < 0)
    return -1;
  for (size_t i = 0; i < l.n; i++)
    *taken |= !strcmp(l.points[i].id, id);
  for (size_t i = 0; i < l.npending; i++)
    *taken |= !strcmp(l.pending[i], id);
  sp_rados_listing_free(&l);
  return 0;
}

int rbd_target_read(struct rbd_target *t, const char *id, const char *rel, char **data,
                    size_t *len, struct sp_err *e)
{
  return sp_rados_get(&t->store, id, rel, data, len, e);
}

int rbd_target_intend(struct rbd_target *t, const char *id, const char *const *items, size_t n,
                      struct sp_err *e)
{
  return sp_rados_intend(&t->store, id, items, n, e);
}

static int put_file(struct rbd_target *t, const char *id, int dirfd, const char *rel,
                    struct sp_err *e)
{
  _cleanup_free_ char *data = NULL;
  size_t len;
  if (sp_read_file_at(dirfd, rel, SP_RADOS_OBJECT_MAX, &data, &len, e) < 0)
    return -1;
  return sp_rados_put(&t->store, id, rel, data, len, e);
}

int rbd_target_commit(struct rbd_target *t, const char *id, int dirfd,
                      const struct sp_sums *sums, const char *domain, struct sp_err *e)
{
  for (size_t i = 0; i < sums->n; i++)
    if (put_file(t, id, dirfd, sums->v[i].path, e) < 0)
      return -1;
  /* The same SHA256SUMS a directory point has, without disks. */
  if (sp_sums_write(dirfd, sums, e) < 0 || put_file(t, id, dirfd, "SHA256SUMS", e) < 0)
    return -1;
  _cleanup_free_ char *json = NULL;
  size_t len;
  struct sp_commit_record rec = { 0 };
  if (sp_read_file_at(dirfd, "manifest.json", SP_RADOS_OBJECT_MAX, &json, &len, e) < 0 ||
      sp_sha256_hex(json, len, rec.sha256) < 0)
    return -1;
  rec.size = len;
  if (sp_rados_commit(&t->store, id, &rec, e) < 0)
    return -1;
  struct sp_err re = { 0 };
  if (sp_rados_register(&t->store, domain, &re) < 0)
    sp_warn(t->log, "point %s is committed, but %s (it is found by the domain's UUID)", id,
            re.msg);
  return 0;
}
