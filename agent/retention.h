/* Retention's decisions, with no file, no libvirt and no clock: which
 * points stay, which kept point must be merged because its chain reaches
 * a point that goes, what a merge changes in a manifest, which full point
 * a chain starts at, and which libvirt checkpoints a future point can
 * still need.  prune.c does the work these decide (docs/design.md,
 * "Retention"); tests/unit/test_retention.c proves every rule. */
#ifndef SP_RETENTION_H
#define SP_RETENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "manifest.h"

/* A domain's complete points, oldest first, as prune loaded them. */
struct retention {
  struct sp_manifest **m;
  bool *kept;
  size_t n;
};

#define RETENTION_NONE ((size_t)-1)

/* The index of point id, RETENTION_NONE when it is not there (or NULL). */
size_t retention_find(const struct retention *r, const char *id);

/* The point a disk's image overlays ("../../<id>/disks/..."), or NONE. */
size_t retention_disk_parent(const struct retention *r, const struct sp_manifest_disk *d);

/* Marks the newest keep points kept; keep <= 0 keeps every point. */
void retention_keep_newest(struct retention *r, long keep);

/* Whether point i reaches, through any disk's chain, a point that is not
 * kept (or not there): it must be merged before anything goes. */
bool retention_needs_unkept(const struct retention *r, size_t i);

/* Keeps every point i's chains reach: i could not be merged. */
void retention_keep_chain_of(struct retention *r, size_t i);

/* Makes m the manifest of a full point, as a merge of its chain leaves it:
 * no parent, no chain full, no parent checkpoint, every disk full qcow2.
 * Its own checkpoint stays: the next diff starts from it. */
void retention_merged_manifest(struct sp_manifest *m);

/* The full point point i's chain starts at, following parent ids; i itself
 * when it is full, NONE when the chain is broken. */
size_t retention_chain_full(const struct retention *r, size_t i);

/* Sets the `full` id of kept incremental points whose chain now starts at
 * another full (a merge made one); changed[i] is set for each rewritten. */
void retention_fix_full_ids(struct retention *r, bool *changed);

/* Which points' libvirt checkpoints a future point can need (needed[i]):
 * the newest's (the next inc) and its chain's full's (the next diff).
 * With keep > 0 a later prune can merge any point of the newest's chain
 * into that chain's full, and the next diff then starts from its
 * checkpoint: every point of that chain keeps its checkpoint (at most
 * keep of them).  With keep <= 0 nothing is ever merged.  Every other
 * checkpoint is only a bitmap that costs the VM write performance. */
void retention_checkpoints_needed(const struct retention *r, long keep, bool *needed);

#endif
