/* restore --instant of a Ceph point (docs/design.md, "Points in Ceph"):
 * each disk's snapshot cloned (clone format 2: nothing to protect) into
 * the pool's default namespace, since libvirt 9.0 cannot name an RBD
 * namespace (docs/facts.md, "Ceph"), as stillpoint-instant.UUID.TARGET;
 * the VM defined on the clones as network disks whose monitors come from
 * the configuration's mon_host and whose cephx key is in a libvirt secret
 * of its own.  What is made here is removed again by instant_rbd_undo
 * until the VM runs; after that the clones and the secret are the VM's. */
#ifndef SP_INSTANT_RBD_H
#define SP_INSTANT_RBD_H

#include <libvirt/libvirt.h>
#include <stddef.h>

#include "ceph_lib.h"
#include "ceph_access.h"
#include "err.h"
#include "instant_xml.h"
#include "rbd_point.h"
#include "strv.h"

#define SP_INSTANT_RBD_PREFIX "stillpoint-instant."

struct instant_rbd {
  rados_ioctx_t io;                       /* the pool's default namespace */
  struct sp_strv clones;                  /* made by this run */
  struct sp_ceph_mon mons[SP_CEPH_MONS_MAX];
  struct instant_xml_host hosts[SP_CEPH_MONS_MAX];
  struct instant_xml_rbd xml;             /* for instant_xml_disks() */
  char user[128];
  char secret_uuid[VIR_UUID_STRING_BUFLEN];
  virSecretPtr secret;                    /* defined by this run */
};

/* The monitors (mon_host of the point's cluster configuration), the
 * user, and the default namespace's I/O context. */
int instant_rbd_prepare(struct instant_rbd *x, const struct rbd_point *p, struct sp_err *e);
/* stillpoint-instant.UUID.TARGET, malloc'd (NULL: not a valid RBD name). */
char *instant_rbd_clone_name(const char *uuid, const char *target);
/* Clones image@snap of the point's namespace into clone. */
int instant_rbd_clone(struct instant_rbd *x, const struct rbd_point *p, const char *image,
                      const char *snap, const char *clone, struct sp_err *e);
/* A libvirt secret of type ceph holding the user's key from its keyring
 * (ceph_keyring, else /etc/ceph/ceph.client.USER.keyring), its usage
 * "stillpoint-instant UUID" for the restored domain uuid. */
int instant_rbd_secret(struct instant_rbd *x, virConnectPtr conn, const struct rbd_point *p,
                       const char *uuid, const char *name, struct sp_err *e);
/* Removes the clones and the secret made (before the VM ran). */
void instant_rbd_undo(struct instant_rbd *x);
void instant_rbd_free(struct instant_rbd *x);

#endif
