/* Retention: keep the newest `keep` points of a domain without ever
 * breaking a chain.  The oldest kept point that still needs a point about
 * to go is merged - its images flattened into standalone ones, so it
 * becomes a full point - and only then is anything removed.  libvirt
 * checkpoints that no future point needs are deleted: every checkpoint
 * keeps a dirty bitmap, and every bitmap costs the VM write performance.
 * What stays, goes and merges is decided in retention.h. */
#ifndef SP_PRUNE_H
#define SP_PRUNE_H

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "err.h"
#include "log.h"
#include "rbd_target.h"

/* dom may be NULL (domain gone): points are pruned, no checkpoint is
 * touched.  keep 0 keeps every complete point.  Each action is logged and,
 * when actions is not NULL, appended to it as {"action","point"/"checkpoint"}. */
int prune_domain(virDomainPtr dom, const char *domain_dir, long keep, bool dry_run,
                 const struct sp_log *log, json_object *actions, struct sp_err *e);

/* Removes every <id>.partial of domain_dir whose lock is free (a failed
 * or killed run's), each logged; one being written stays.  What a backup
 * does before it plans, so that a failed point's space comes back without
 * keep > 0. */
int prune_stale_partials(const char *domain_dir, const struct sp_log *log, struct sp_err *e);

/* The same in a Ceph pool (t locked): every snapshot is a whole disk, so
 * nothing is merged; each point beyond keep vanishes in one operation on
 * the VM's index (its point.ID key becomes intents for its objects,
 * snapshots and images), then those are removed, and its checkpoint is
 * deleted. */
int prune_rbd(virDomainPtr dom, struct rbd_target *t, long keep, bool dry_run,
              const struct sp_log *log, json_object *actions, struct sp_err *e);

#endif
