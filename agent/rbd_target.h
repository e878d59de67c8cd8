/* A backup target in Ceph, target = rbd:POOL[/NAMESPACE] (docs/design.md,
 * "Points in Ceph"): the coordinator's side of the RADOS point store.
 * One value per run: connected with the policy's identity and timeouts,
 * the VM's lock in the pool held as a lease a thread renews, what earlier
 * runs left removed, the committed points read back as manifests, and a
 * point's small files (staged in a local directory while the run writes
 * them) uploaded and committed last. */
#ifndef SP_RBD_TARGET_H
#define SP_RBD_TARGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "ceph_lib.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "manifest.h"
#include "own_dirs.h"
#include "point_layout.h"
#include "rados_points.h"
#include "strv.h"
#include "xalloc.h"

#define SP_RBD_STAGING_DIR SP_RUN_DIR "/rbd-staging" /* 0700: a point's files before upload */

struct rbd_target {
  char *pool, *ns;              /* ns NULL: the pool's default namespace */
  char *conf, *user, *keyring;  /* NULL: librados's defaults */
  unsigned timeout_s;
  rados_t cluster;
  struct sp_rados_store store;
  bool store_open;
  const struct sp_log *log;
  /* The lease's renewer (SP_RADOS_LEASE_S / 3). */
  pthread_t renewer;
  bool renewing, stop;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* Ids whose leftovers rbd_target_lock() found (pending, never
   * committed): a checkpoint named so belongs to no point. */
  struct sp_strv left_ids;
};

/* Whether a target names a Ceph pool ("rbd:..."). */
bool rbd_target_is(const char *target);
/* "rbd:POOL[/NAMESPACE]" into its names (each sp_rbd_name_ok); exit 2 otherwise. */
int rbd_target_parse(const char *target, char **pool, char **ns, struct sp_err *e);

/* Connects with ceph_conf/ceph_user/ceph_keyring/ceph_timeout_s of cfg
 * (target: the policy's, or an rbd: target given instead). */
int rbd_target_connect(struct rbd_target *t, const struct sp_config *cfg, const char *target,
                       const struct sp_log *log, struct sp_err *e);
/* Connects as rbd_target_connect and opens VM uuid's store in the pool. */
int rbd_target_open(struct rbd_target *t, const struct sp_config *cfg, const char *uuid,
                    const struct sp_log *log, struct sp_err *e);
/* Opens VM uuid's store on a connected target. */
int rbd_target_open_store(struct rbd_target *t, const char *uuid, struct sp_err *e);
/* Appends to uuids the UUIDs the pool's stillpoint.vms maps to domain
 * name (or the argument itself when it is a UUID with points). */
int rbd_target_find_domain(struct rbd_target *t, const char *name, struct sp_strv *uuids,
                           struct sp_err *e);
/* The distinct domain names of the pool's stillpoint.vms (prune --all). */
int rbd_target_domain_names(struct rbd_target *t, struct sp_strv *names, struct sp_err *e);
/* Takes the VM's lock in the pool (what: "backup", "prune"), keeps it
 * renewed until close, and removes what failed runs left (said in the
 * log), their ids in t->left_ids. */
int rbd_target_lock(struct rbd_target *t, const char *what, struct sp_err *e);
/* Stops renewing, unlocks and closes the VM's store, staying connected. */
void rbd_target_close_store(struct rbd_target *t);
/* Stops renewing, unlocks, disconnects; safe on a zeroed value. */
void rbd_target_close(struct rbd_target *t);

/* rbd:POOL[/NAMESPACE]/IMAGE[@SNAP], malloc'd. */
SP_XALLOC char *rbd_target_spec(const struct rbd_target *t, const char *image,
                                const char *snap);
/* The point's name for users and JSON: rbd:POOL[/NAMESPACE]/UUID@ID. */
SP_XALLOC char *rbd_target_point_name(const struct rbd_target *t, const char *id);
/* The copier contract's STILLPOINT_CEPH_* values ("" for a default). */
const char *rbd_target_env(const struct rbd_target *t, const char *what, char *buf, size_t n);

/* The newest snapshot of image into out ("" when it has none); 1 when the
 * image does not exist. */
int rbd_target_newest_snap(struct rbd_target *t, const char *image, char *out, size_t n,
                           struct sp_err *e);
/* The committed points' manifests (format 2, this VM's, ids matching),
 * oldest first; unreadable ones are left out with a warning. */
int rbd_target_load_points(struct rbd_target *t, struct sp_manifest **out, size_t *n,
                           struct sp_err *e);
/* Whether id is taken (committed or pending). */
int rbd_target_has_id(struct rbd_target *t, const char *id, bool *taken, struct sp_err *e);
/* One file of a committed point. */
int rbd_target_read(struct rbd_target *t, const char *id, const char *rel, char **data,
                    size_t *len, struct sp_err *e);
/* Records that the run creates these items (sp_rados_intend). */
int rbd_target_intend(struct rbd_target *t, const char *id, const char *const *items, size_t n,
                      struct sp_err *e);
/* Uploads every file listed in sums from the staged point directory
 * dirfd, then SHA256SUMS, then commits point id with the manifest's hash
 * and size (manifest.json must be among the files), and records the
 * domain's name.  A commit whose answer is lost (a timeout, a connection
 * error) is read back: landed is success; when the read fails too, -1
 * with *unknown set: the point may exist, its checkpoint must stay, and
 * the next run decides from the index (docs/design.md, "Points in Ceph"). */
int rbd_target_commit(struct rbd_target *t, const char *id, int dirfd,
                      const struct sp_sums *sums, const char *domain, bool *unknown,
                      struct sp_err *e);

#endif
