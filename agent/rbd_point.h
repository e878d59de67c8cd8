/* A committed point in a Ceph pool, read back for restore and verify
 * (docs/design.md, "Points in Ceph", Readers).  A point there is untrusted
 * input like a directory point: it is found only through its commit
 * record (never a pending run's leftovers), its manifest must be the one
 * committed, every object used is checked against SHA256SUMS, and its
 * names are rebuilt from checked parts, never taken as they are. */
#ifndef SP_RBD_POINT_H
#define SP_RBD_POINT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "manifest.h"
#include "point_layout.h"
#include "rbd_target.h"
#include "state_capture.h"

struct rbd_point {
  struct rbd_target t;
  char id[32];
  char *name;          /* rbd:POOL[/NAMESPACE]/UUID@ID, for messages */
  struct sp_manifest m;
  struct sp_sums sums;
};

/* Whether arg names a Ceph point (rbd:...) rather than a directory. */
bool rbd_point_is(const char *arg);
/* Opens rbd:POOL[/NAMESPACE]/UUID@ID with the policy's Ceph identity:
 * the point must be committed, its manifest the committed one (format 2,
 * this UUID and id), SHA256SUMS readable and listing the manifest with its
 * hash.  Exit 3 for a point that is missing, uncommitted or damaged. */
int rbd_point_open(struct rbd_point *p, const struct sp_config *cfg, const char *arg,
                   const struct sp_log *log, struct sp_err *e);
void rbd_point_close(struct rbd_point *p);

/* One object of the point, read and checked against SHA256SUMS (exit 3
 * when it is not listed or differs). */
int rbd_point_read(struct rbd_point *p, const char *rel, char **data, size_t *len,
                   struct sp_err *e);
/* The NVRAM file (nvram present) or the TPM tree (tpm present) of the
 * manifest, each file checked against the manifest and SHA256SUMS. */
int rbd_point_nvram(struct rbd_point *p, struct sp_blob *b, struct sp_err *e);
int rbd_point_tpm(struct rbd_point *p, struct sp_tree *t, struct sp_err *e);
/* That disk d's snapshot exists and has the manifest's size. */
int rbd_point_snap_check(struct rbd_point *p, const struct sp_manifest_disk *d,
                         struct sp_err *e);
/* QEMU's rbd: file name of disk d's snapshot with the identity and op
 * timeouts as options (qemu-img reads it), malloc'd. */
char *rbd_point_qemu_source(const struct rbd_point *p, const struct sp_manifest_disk *d,
                            struct sp_err *e);

#endif
