/* The RADOS point store (docs/design.md, "Points in Ceph"): one VM's
 * points in a pool (and namespace), its lock, and the one atomic commit
 * that makes a point visible.
 *
 *   stillpoint.vm.UUID              the VM's index: omap point.ID = commit
 *                                   record, pending.ID.ITEM = intent; the
 *                                   lock "stillpoint"; xattr holder
 *   stillpoint.point.UUID.ID/PATH   the point's files
 *   stillpoint.vms                  omap UUID = domain name
 *
 * Writers record an intent before creating anything, so whatever a failed
 * run leaves is found from the index, never by listing the pool; a point
 * exists for readers only once point.ID is set, which happens in one
 * write operation guarded by the lock holder's xattr. */
#ifndef SP_CEPH_RADOS_POINTS_H
#define SP_CEPH_RADOS_POINTS_H

#include <stdbool.h>
#include <stddef.h>

#include "ceph_lib.h"
#include "err.h"
#include "point_names.h"
#include "strv.h"
#include "uuid.h"

#define SP_RADOS_LEASE_S 60     /* the lock lasts this long unless renewed */
#define SP_RADOS_HOLDER_MAX 200 /* the holder's description (the lock cookie) */
#define SP_RADOS_OBJECT_MAX (64u << 20) /* largest point file read back */

struct sp_rados_store {
  rados_ioctx_t io;
  char uuid[SP_UUID_LEN + 1];
  char *vm_obj;
  char holder[SP_RADOS_HOLDER_MAX + 1]; /* our cookie while locked */
  bool locked;
};

struct sp_rados_point {
  char id[32];
  struct sp_commit_record rec;
};

struct sp_rados_listing {
  struct sp_rados_point *points; /* committed, oldest first */
  size_t n;
  char (*pending)[32];           /* ids with intents left: being written, failed or pruned */
  size_t npending;
};

/* Opens the store of VM uuid in pool/ns on a connected cluster. */
int sp_rados_store_open(rados_t cluster, const char *pool, const char *ns, const char *uuid,
                        struct sp_rados_store *s, struct sp_err *e);
/* Unlocks if locked, then frees. */
void sp_rados_store_close(struct sp_rados_store *s);

/* Takes the VM's lock for SP_RADOS_LEASE_S seconds and makes holder (a
 * description, "HOST pid PID since TIME") the fencing token.  Busy: an
 * error naming the current holder. */
int sp_rados_lock(struct sp_rados_store *s, const char *holder, struct sp_err *e);
/* The lock's current holder: its cookie and client ("client.N"); both ""
 * when nobody holds it. */
int sp_rados_lock_holder(struct sp_rados_store *s, char *cookie, size_t cn, char *client,
                         size_t cln, struct sp_err *e);
/* Breaks the lock of client with cookie: only for a holder known dead. */
int sp_rados_lock_break(struct sp_rados_store *s, const char *client, const char *cookie,
                        struct sp_err *e);
/* Extends the lease; fails when the lock is no longer ours. */
int sp_rados_lock_renew(struct sp_rados_store *s, struct sp_err *e);
int sp_rados_unlock(struct sp_rados_store *s, struct sp_err *e);

/* Records intents pending.ID.ITEM, one operation for all items. */
int sp_rados_intend(struct sp_rados_store *s, const char *id, const char *const *items,
                    size_t n, struct sp_err *e);
/* Writes one file of point id (its intent first). */
int sp_rados_put(struct sp_rados_store *s, const char *id, const char *path, const void *data,
                 size_t len, struct sp_err *e);
/* Makes point id visible: one operation that checks we still hold the
 * lock (xattr holder), sets point.ID and removes every pending.ID key.
 * 0, or librados's negative result with e set: sp_commit_outcome() says
 * whether that means it may have landed all the same. */
int sp_rados_commit(struct sp_rados_store *s, const char *id,
                    const struct sp_commit_record *rec, struct sp_err *e);
/* After a commit whose answer was lost: reads point.ID back and compares
 * it with rec (sp_commit_readback); e is set for SP_COMMIT_UNKNOWN.  The
 * read goes to the same placement group after the write, and an OSD
 * applies one client's operations on an object in order. */
enum sp_commit_outcome sp_rados_commit_read(struct sp_rados_store *s, const char *id,
                                            const struct sp_commit_record *rec,
                                            struct sp_err *e);
/* Maps the VM's UUID to its domain name in stillpoint.vms. */
int sp_rados_register(struct sp_rados_store *s, const char *domain, struct sp_err *e);

/* The VM's points and pending ids. */
int sp_rados_list(struct sp_rados_store *s, struct sp_rados_listing *out, struct sp_err *e);
void sp_rados_listing_free(struct sp_rados_listing *l);
/* Reads one file of a point (at most SP_RADOS_OBJECT_MAX bytes). */
int sp_rados_get(struct sp_rados_store *s, const char *id, const char *path, char **data,
                 size_t *len, struct sp_err *e);
/* Reads point id's manifest.json and checks it against its commit record. */
int sp_rados_get_manifest(struct sp_rados_store *s, const struct sp_rados_point *p, char **data,
                          size_t *len, struct sp_err *e);

/* Makes point id invisible again in one operation (under the lock): its
 * point.ID goes, intents for items (its files, snapshots, images) come,
 * for sp_rados_cleanup to remove. */
int sp_rados_uncommit(struct sp_rados_store *s, const char *id, const char *const *items,
                      size_t n, struct sp_err *e);
/* Under the lock: removes everything the pending keys name (objects, RBD
 * snapshots, RBD images with no snapshot left), then the keys; *removed
 * counts the items; kept gets one sentence for each that must wait (an
 * image a dead client still watches, one whose removed snapshots clones
 * still need: they are named), saying what to do; their keys stay for a
 * later run. */
int sp_rados_cleanup(struct sp_rados_store *s, size_t *removed, struct sp_strv *kept,
                     struct sp_err *e);

#endif
