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

#endif
