/* Which level the next point is, what each disk starts from, and the
 * libvirt checkpoints that must exist for it (invariant 4: a checkpoint
 * libvirt lost is redefined from the chain's saved checkpoint.xml, and
 * when that cannot be done the point is a full one, said loudly). */
#ifndef SP_LEVEL_PLAN_H
#define SP_LEVEL_PLAN_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "level.h"
#include "log.h"
#include "manifest.h"
#include "preflight.h"
#include "rbd_target.h"

struct disk_plan {
  const struct pf_disk *pf;
  enum sp_level level;  /* for this disk */
  char *parent_image;   /* absolute path of the image it overlays, NULL for full */
  char *parent_file;    /* the same, relative to the point's disks/ directory */
  bool bitmap;          /* gets a bitmap in the new checkpoint */
  /* target = rbd: an inc or diff disk's image (parent_image is then
   * rbd:POOL[/NS]/IMAGE@NEWEST, the snapshot the copier writes over);
   * NULL for a full disk, which starts an image of its own. */
  char *rbd_image;
};

struct chain_plan {
  enum sp_level level;  /* of the point */
  char *parent_id;      /* NULL for full */
  char *full_id;        /* the chain's full point; NULL when this one is */
  char *parent_checkpoint; /* the job's <incremental>, NULL for full */
  struct disk_plan *disks; /* one per pf disk that is copied */
  size_t ndisks;
  char *why_full;       /* when a requested or usual incremental became full */
};

/* level_req: --level, else the policy's level.
 * The chain is read from domain_dir, or from rbd when the target is a
 * Ceph pool (then domain_dir is unused). */
int chain_plan_make(virDomainPtr dom, const char *domain_dir, struct rbd_target *rbd,
                    const struct preflight *pf,
                    const struct sp_config *cfg, struct sp_level_req level_req,
                    const struct sp_log *log, struct chain_plan *p, struct sp_err *e);
void chain_plan_free(struct chain_plan *p);

/* Deletes a checkpoint (libvirt merges its bitmap into its parent's, so
 * the last good checkpoint still covers every change). */
int checkpoint_delete(virDomainPtr dom, const char *name, struct sp_err *e);

#endif
