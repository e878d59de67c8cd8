#include "rbd_target.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ceph_lib.h"
#include "ceph_client.h"
#include "cleanup.h"
#include "clock.h"
#include "fsutil.h"
#include "rbd_spec.h"
#include "sha256.h"
#include "test_knob.h"
#include "xalloc.h"

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
  *pool = sp_xstrndup(p, pl);
  if (n)
    *ns = sp_xstrdup(n);
  return 0;
}

static char *opt_dup(const struct sp_config *cfg, enum sp_key k)
{
  const char *v = sp_config_str(cfg, k);
  return v && *v ? sp_xstrdup(v) : NULL;
}

int rbd_target_connect(struct rbd_target *t, const struct sp_config *cfg, const char *target,
                       const struct sp_log *log, struct sp_err *e)
{
  t->log = log;
  if (rbd_target_parse(target ? target : sp_config_str(cfg, SP_KEY_TARGET), &t->pool, &t->ns,
                       e) < 0)
    return -1;
  t->conf = opt_dup(cfg, SP_KEY_CEPH_CONF);
  t->user = opt_dup(cfg, SP_KEY_CEPH_USER);
  t->keyring = opt_dup(cfg, SP_KEY_CEPH_KEYRING);
  t->timeout_s = (unsigned)sp_config_int(cfg, SP_KEY_CEPH_TIMEOUT_S);
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

/* Calls each(uuid, domain name, ctx) for every entry of the pool's
 * stillpoint.vms whose key is a UUID (others are not ours). */
static int walk_vms(struct rbd_target *t,
                    void (*each)(const char *uuid, const char *name, size_t nl, void *ctx),
                    void *ctx, struct sp_err *e)
{
  _cleanup_ioctx_ rados_ioctx_t io = NULL;
  if (sp_ceph_ioctx(t->cluster, t->pool, t->ns, &io, e) < 0)
    return -1;
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
      if (sp_uuid_ok(after))
        each(after, v, vl, ctx);
    }
    rados_omap_get_end(it);
    if (!more || !any)
      return 0;
  }
}

struct find_ctx {
  const char *name;
  struct sp_strv *uuids;
};

static void find_each(const char *uuid, const char *name, size_t nl, void *ctx)
{
  struct find_ctx *f = ctx;
  if (nl == strlen(f->name) && memcmp(name, f->name, nl) == 0 && strcmp(uuid, f->name) != 0)
    sp_strv_push(f->uuids, uuid);
}

int rbd_target_find_domain(struct rbd_target *t, const char *name, struct sp_strv *uuids,
                           struct sp_err *e)
{
  /* The directory of domains; a UUID given as the name is taken as is. */
  if (sp_uuid_ok(name))
    sp_strv_push(uuids, name);
  struct find_ctx f = { name, uuids };
  return walk_vms(t, find_each, &f, e);
}

static void names_each(const char *uuid, const char *name, size_t nl, void *ctx)
{
  (void)uuid;
  struct sp_strv *names = ctx;
  _cleanup_free_ char *n = sp_xstrndup(name, nl);
  /* The pool is not trusted: a name also picks a policy file, so only a
   * plain one (as restore's pick_identity accepts) is taken. */
  bool ok = n[0] && n[0] != '.' && strlen(n) == nl && nl < 200 && !strchr(n, '/');
  for (const char *p = n; ok && *p; p++)
    ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
  if (!ok)
    return;
  for (size_t i = 0; i < names->n; i++)
    if (strcmp(names->v[i], n) == 0)
      return;
  sp_strv_push(names, n);
}

int rbd_target_domain_names(struct rbd_target *t, struct sp_strv *names, struct sp_err *e)
{
  return walk_vms(t, names_each, names, e);
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

/* A lock left by a run of this host that is gone: it could not unlock
 * (the cluster was unreachable when it ended, e.g. a dead OSD) and the
 * lease would block every run for up to SP_RADOS_LEASE_S.  Called with the
 * VM's local lock held, so no live run of this VM on this host can be the
 * holder; a pid that still exists is left alone all the same.  Holders on
 * other hosts are never judged. */
static int break_dead_local_holder(struct rbd_target *t, const char *host, struct sp_err *e)
{
  char cookie[SP_RADOS_HOLDER_MAX + 1], client[128], theirs[128];
  long pid = 0;
  if (sp_rados_lock_holder(&t->store, cookie, sizeof cookie, client, sizeof client, e) < 0)
    return -1;
  if (!cookie[0] || !sp_rados_holder_parse(cookie, theirs, sizeof theirs, &pid) ||
      strcmp(theirs, host) != 0 || pid == (long)getpid() ||
      (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
    return 0;
  if (sp_rados_lock_break(&t->store, client, cookie, e) < 0)
    return -1;
  sp_warn(t->log, "broke the Ceph lock of domain %s left by a run that ended without releasing "
          "it (%s; the cluster was unreachable when it ended)", t->store.uuid, cookie);
  return 0;
}

int rbd_target_lock(struct rbd_target *t, const char *what, struct sp_err *e)
{
  char host[128] = "", holder[SP_RADOS_HOLDER_MAX + 1], since[32];
  gethostname(host, sizeof host - 1);
  sp_utc_now(since);
  if (!sp_rados_holder_format(holder, sizeof holder, host, (long)getpid(), what, since))
    return sp_err_set(e, SP_EXIT_FAILED, "host name '%s' cannot name a lock holder", host);
  if (break_dead_local_holder(t, host, e) < 0 || sp_rados_lock(&t->store, holder, e) < 0)
    return -1;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  if (pthread_create(&t->renewer, NULL, renew_loop, t) != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    return sp_err_sys(e, SP_EXIT_FAILED, EAGAIN, "the lease's renewing thread");
  }
  t->renewing = true;
  /* The ids first: cleaning removes the keys that name them. */
  struct sp_rados_listing l;
  if (sp_rados_list(&t->store, &l, e) < 0)
    return sp_err_prefix(e, "reading the domain's index in the pool");
  for (size_t i = 0; i < l.npending; i++) {
    bool committed = false;
    for (size_t k = 0; k < l.n; k++)
      committed |= strcmp(l.points[k].id, l.pending[i]) == 0;
    if (!committed)
      sp_strv_push(&t->left_ids, l.pending[i]);
  }
  sp_rados_listing_free(&l);
  size_t removed = 0;
  _cleanup_(sp_strv_free) struct sp_strv kept = SP_STRV_INIT;
  if (sp_rados_cleanup(&t->store, &removed, &kept, e) < 0)
    return sp_err_prefix(e, "removing what a failed run left in the pool");
  if (removed)
    sp_info(t->log, "removed %zu leftover%s of failed or pruned points from the pool", removed,
            removed == 1 ? "" : "s");
  for (size_t i = 0; i < kept.n; i++)
    sp_warn(t->log, "%s", kept.v[i]);
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
  sp_strv_free(&t->left_ids);
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
  return sp_xasprintf(SP_RBD_PREFIX "%s%s%s/%s%s%s", t->pool, t->ns ? "/" : "",
                      t->ns ? t->ns : "", image, snap ? "@" : "", snap ? snap : "");
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
    snaps = sp_xcalloc((size_t)max, sizeof *snaps);
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
  struct sp_manifest *m = sp_xcalloc(l.n ? l.n : 1, sizeof *m);
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

/* The commit's write, or what a test failpoint makes of it (test_knob.h,
 * commit:ACTION): lost* lands it and then reports a timeout, timeout*
 * reports one without sending it. */
static int commit_write(struct rbd_target *t, const char *id, const struct sp_commit_record *rec,
                        const char *fp, struct sp_err *e)
{
  bool lost = fp && strncmp(fp, "lost", 4) == 0, timeout = fp && strncmp(fp, "timeout", 7) == 0;
  int rc = timeout ? 0 : sp_rados_commit(&t->store, id, rec, e);
  if (rc == 0 && (lost || timeout)) {
    fprintf(stderr, "stillpoint: test failpoint commit: %s\n", fp);
    rc = -ETIMEDOUT;
    sp_err_sys(e, SP_EXIT_FAILED, -rc, "committing point %s", id);
  }
  return rc;
}

/* Whether a commit whose answer was lost landed (-unread: a test
 * failpoint whose read fails too). */
static enum sp_commit_outcome commit_read_back(struct rbd_target *t, const char *id,
                                               const struct sp_commit_record *rec,
                                               const char *fp, struct sp_err *e)
{
  size_t n = fp ? strlen(fp) : 0;
  if (n > 7 && strcmp(fp + n - 7, "-unread") == 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ETIMEDOUT, "reading point %s back (test failpoint)", id),
           SP_COMMIT_UNKNOWN;
  return sp_rados_commit_read(&t->store, id, rec, e);
}

int rbd_target_commit(struct rbd_target *t, const char *id, int dirfd,
                      const struct sp_sums *sums, const char *domain, bool *unknown,
                      struct sp_err *e)
{
  *unknown = false;
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
  const char *fp = test_failpoint_action("commit");
  enum sp_commit_outcome o = sp_commit_outcome(commit_write(t, id, &rec, fp, e));
  if (o == SP_COMMIT_UNKNOWN) {
    /* The write may have landed before its answer was lost: failing as
     * if it had not would delete the checkpoint of a committed point. */
    sp_warn(t->log, "%s: no answer to trust; reading the domain's index back to learn whether "
            "point %s was committed", e->msg, id);
    struct sp_err re = { 0 };
    o = commit_read_back(t, id, &rec, fp, &re);
    if (o == SP_COMMIT_LANDED) {
      sp_err_clear(e);
      sp_info(t->log, "point %s is committed (read back from the index)", id);
    } else if (o == SP_COMMIT_NOT_LANDED) {
      sp_err_prefix(e, "point %s was not committed (read back from the index)", id);
    } else {
      sp_err_set(e, SP_EXIT_FAILED, "the commit of point %s got no answer and reading it back "
                 "failed too (%s): the point may exist, so its checkpoint is kept; the next "
                 "backup of %s decides from the pool's index (an incremental on the point if it "
                 "was committed, else its leftovers and checkpoint are removed)", id, re.msg,
                 domain);
    }
  }
  if (o != SP_COMMIT_LANDED) {
    *unknown = o == SP_COMMIT_UNKNOWN;
    return -1;
  }
  struct sp_err re = { 0 };
  if (sp_rados_register(&t->store, domain, &re) < 0)
    sp_warn(t->log, "point %s is committed, but %s (it is found by the domain's UUID)", id,
            re.msg);
  return 0;
}
