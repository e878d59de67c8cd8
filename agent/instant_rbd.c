#include "instant_rbd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ceph_lib.h"
#include "ceph_client.h"
#include "cleanup.h"
#include "fsutil.h"
#include "rbd_spec.h"
#include "virt.h"
#include "xalloc.h"

int instant_rbd_prepare(struct instant_rbd *x, const struct rbd_point *p, struct sp_err *e)
{
  const struct rbd_target *t = &p->t;
  char mon_host[4097];
  int rc = rados_conf_get(t->cluster, "mon_host", mon_host, sizeof mon_host);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "reading mon_host of the Ceph configuration");
  size_t n = 0;
  if (sp_ceph_mon_host_parse(mon_host, x->mons, SP_CEPH_MONS_MAX, &n, e) < 0)
    return sp_err_prefix(e, "%s", t->conf ? t->conf : "the Ceph configuration");
  for (size_t i = 0; i < n; i++)
    x->hosts[i] = (struct instant_xml_host){ x->mons[i].host, x->mons[i].port };
  snprintf(x->user, sizeof x->user, "%s", t->user ? t->user : "admin");
  x->xml = (struct instant_xml_rbd){ .pool = t->pool, .user = x->user,
                                     .secret_uuid = x->secret_uuid, .hosts = x->hosts,
                                     .nhosts = n };
  return sp_ceph_ioctx(t->cluster, t->pool, NULL, &x->io, e);
}

char *instant_rbd_clone_name(const char *uuid, const char *target)
{
  char *s = NULL;
  if (asprintf(&s, SP_INSTANT_RBD_PREFIX "%s.%s", uuid, target) < 0)
    return NULL;
  if (!sp_rbd_name_ok(s, strlen(s))) {
    free(s);
    return NULL;
  }
  return s;
}

int instant_rbd_clone(struct instant_rbd *x, const struct rbd_point *p, const char *image,
                      const char *snap, const char *clone, struct sp_err *e)
{
  rbd_image_options_t opts;
  rbd_image_options_create(&opts);
  /* Format 2: the snapshot needs no protection, and prune can still
   * remove it (it moves to the snapshot trash while the clone lives). */
  int rc = rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_CLONE_FORMAT, 2);
  if (rc == 0)
    rc = rbd_clone3(p->t.store.io, image, snap, x->io, clone, opts);
  rbd_image_options_destroy(opts);
  if (rc == -ENOSYS)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "cloning %s@%s: refused (ENOSYS): the image "
                      "needs the layering feature (images stillpoint wrote before it set "
                      "layering lack it: restore such a point to files, without --instant), "
                      "and clones of unprotected snapshots need Mimic or newer clients "
                      "(ceph osd set-require-min-compat-client mimic)", image, snap);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc, "cloning %s@%s into %s/%s%s", image, snap,
                      p->t.pool, clone, rc == -EEXIST ? " (it exists: an earlier restore under "
                      "this UUID?)" : "");
  sp_strv_push(&x->clones, clone);
  return 0;
}

static int read_key(const struct rbd_point *p, const char *user, unsigned char *key,
                    size_t *klen, struct sp_err *e)
{
  _cleanup_free_ char *path = NULL, *text = NULL, *entity = NULL;
  size_t len = 0;
  if (!p->t.keyring)
    path = sp_xasprintf("/etc/ceph/ceph.client.%s.keyring", user);
  entity = sp_xasprintf("client.%s", user);
  const char *kr = p->t.keyring ? p->t.keyring : path;
  if (sp_read_file(kr, SP_CEPH_KEYRING_MAX, &text, &len, e) < 0)
    return sp_err_prefix(e, "the key for QEMU (set ceph_keyring)");
  if (sp_ceph_keyring_key(text, len, entity, key, klen, e) < 0)
    return sp_err_prefix(e, "%s", kr);
  return 0;
}

int instant_rbd_secret(struct instant_rbd *x, virConnectPtr conn, const struct rbd_point *p,
                       const char *uuid, const char *name, struct sp_err *e)
{
  unsigned char key[SP_CEPH_KEY_MAX];
  size_t klen = 0;
  _cleanup_free_ char *xml = NULL;
  if (read_key(p, x->user, key, &klen, e) < 0)
    return -1;
  /* name is a plain domain name (restore checked it), but not XML-safe:
   * the description says only the UUID. */
  (void)name;
  xml = sp_xasprintf("<secret ephemeral='no' private='yes'><description>stillpoint: the "
                     "Ceph key of client.%s for restored domain %s</description><usage "
                     "type='ceph'><name>stillpoint-instant %s</name></usage></secret>", x->user,
                     uuid, uuid);
  if (!(x->secret = virSecretDefineXML(conn, xml, 0)))
    return explicit_bzero(key, sizeof key),
           sp_err_set(e, SP_EXIT_FAILED, "libvirt refused the Ceph secret: %s", virt_errmsg());
  int rc = virSecretSetValue(x->secret, key, klen, 0);
  explicit_bzero(key, sizeof key);
  if (rc < 0 || virSecretGetUUIDString(x->secret, x->secret_uuid) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot set the Ceph secret's value: %s",
                      virt_errmsg());
  return 0;
}

void instant_rbd_undo(struct instant_rbd *x)
{
  for (size_t i = x->clones.n; x->io && i-- > 0;)
    rbd_remove(x->io, x->clones.v[i]);
  sp_strv_free(&x->clones);
  if (x->secret) {
    virSecretUndefine(x->secret);
    virSecretFree(x->secret);
    x->secret = NULL;
  }
}

void instant_rbd_free(struct instant_rbd *x)
{
  sp_strv_free(&x->clones);
  if (x->secret)
    virSecretFree(x->secret);
  sp_rados_ioctx_destroy(&x->io);
  memset(x, 0, sizeof *x);
}
