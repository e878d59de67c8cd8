/* The names a point in Ceph is stored under, and the small records the
 * RADOS point store keeps in omaps (docs/design.md, "Points in Ceph").
 * Pure: every name is built from checked parts, and every record read
 * back is parsed strictly, so a pool written by someone else cannot make
 * a reader build a name outside the VM's own. */
#ifndef SP_CEPH_POINT_NAMES_H
#define SP_CEPH_POINT_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sha256.h"

#define SP_RADOS_VMS "stillpoint.vms"            /* omap: UUID -> domain name */
#define SP_RADOS_LOCK "stillpoint"               /* the VM lock's name */
#define SP_RADOS_HOLDER_XATTR "holder"           /* the lock holder's cookie, fencing the commit */
#define SP_RADOS_KEY_POINT "point."              /* omap: point.ID -> commit record */
#define SP_RADOS_KEY_PENDING "pending."          /* omap: pending.ID.ITEM -> "" (intent) */
#define SP_RADOS_RECORD_MAX 128

/* stillpoint.vm.UUID: the VM's index, lock and commit point. */
char *sp_rados_vm_object(const char *uuid);
/* stillpoint.point.UUID.ID/PATH: one file of a point; PATH relative and
 * inside the point (sp_relpath_ok). */
char *sp_rados_point_object(const char *uuid, const char *id, const char *path);
/* stillpoint.UUID.TARGET.CHAIN: the RBD image of a disk's chain. */
char *sp_rados_image_name(const char *uuid, const char *target, const char *chain_id);

/* Omap keys of the VM index: point.ID, and pending.ID.ITEM where ITEM is
 * a point file's PATH, "@IMAGE" (an image the run created) or
 * "@IMAGE@ID" (a snapshot it created). */
char *sp_rados_point_key(const char *id);
char *sp_rados_pending_key(const char *id, const char *item);
/* What a key names: kind 'p' (point) or 'i' (pending), its id and, for
 * pending, its item (pointers into key).  False for anything else,
 * including an id or item that is not well formed. */
struct sp_rados_key {
  char kind;
  char id[32];
  const char *item;
};
bool sp_rados_key_parse(const char *key, struct sp_rados_key *out);
/* An item: a point file's path, or @IMAGE / @IMAGE@SNAP with RBD names. */
bool sp_rados_item_ok(const char *item);

/* The VM lock's cookie names its holder: "HOST pid PID WHAT since TIME".
 * Formats one into buf (false when it does not fit or a part is not a
 * plain word); parses one into host and pid (false for any other form:
 * a cookie someone else wrote is never trusted as ours). */
bool sp_rados_holder_format(char *buf, size_t n, const char *host, long pid, const char *what,
                            const char *since);
bool sp_rados_holder_parse(const char *cookie, char *host, size_t hn, long *pid);

/* The commit record, the value of point.ID: the manifest's SHA-256 and
 * size, "stillpoint-point 1 sha256 HEX size N", so a reader knows the
 * manifest object it reads is the one committed. */
struct sp_commit_record {
  char sha256[SP_SHA256_HEX_LEN + 1];
  uint64_t size;
};
int sp_commit_record_format(const struct sp_commit_record *r, char *buf, size_t n);
int sp_commit_record_parse(const char *buf, size_t len, struct sp_commit_record *out,
                           struct sp_err *e);

/* Whether a commit landed, as far as one answer tells. */
enum sp_commit_outcome {
  SP_COMMIT_LANDED,
  SP_COMMIT_NOT_LANDED,
  SP_COMMIT_UNKNOWN, /* no answer to trust (a timeout, a lost connection): read it back */
};
/* The commit operation's librados result: 0 landed; an error the OSD
 * answered having checked the operation (the fence failed, no permission,
 * a full pool, ...) did not land, since one write operation is applied
 * whole or not at all; anything else (ETIMEDOUT, a connection error,
 * EIO...) may have landed before the answer was lost. */
enum sp_commit_outcome sp_commit_outcome(int rc);
/* The read-back of point.ID after an unknown commit: rc is the read's
 * result (-ENOENT: the index or the key is absent), val/vlen the value
 * found.  Landed only when the value is exactly our record; another
 * value is not our commit; a failed read is still unknown. */
enum sp_commit_outcome sp_commit_readback(int rc, const char *val, size_t vlen,
                                          const struct sp_commit_record *ours);

#endif
