/* Which level the next point is, decided from the request, the policy and
 * the domain's points alone (no libvirt, no file): level_plan.c then checks
 * that what it starts from is still there.  tests/unit/test_level_choice.c
 * proves each rule. */
#ifndef SP_LEVEL_CHOICE_H
#define SP_LEVEL_CHOICE_H

#include <stddef.h>

#include "level.h"
#include "manifest.h"

/* req: --level, else the policy's level.
 * copier_format: the policy's (raw writes whole disks: always full).
 * full_every: incrementals after a full before auto takes a full (0 never).
 * hist: the domain's complete points, oldest first.  Returns the
 * level; *why (malloc'd) says why an asked-for inc or diff is full. */
enum sp_level level_choose(struct sp_level_req req, const char *copier_format, long full_every,
                         const struct sp_manifest *hist, size_t n, char **why);

/* Incrementals since the chain's full, walking last's parent links. */
int level_incs_since_full(const struct sp_manifest *hist, size_t n,
                          const struct sp_manifest *last);

/* The point of hist named id, NULL when there is none (or id is NULL). */
const struct sp_manifest *level_history_find(const struct sp_manifest *hist, size_t n,
                                             const char *id);

#endif
