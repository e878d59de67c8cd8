#include "level_choice.h"

#include <stdio.h>
#include <string.h>

#include "xalloc.h"

/* Chains are acyclic when stillpoint wrote them; a crafted cycle ends here. */
#define LEVEL_DEPTH_MAX 1000

const struct sp_manifest *level_history_find(const struct sp_manifest *hist, size_t n,
                                             const char *id)
{
  for (size_t i = 0; id && i < n; i++)
    if (strcmp(hist[i].id, id) == 0)
      return &hist[i];
  return NULL;
}

int level_incs_since_full(const struct sp_manifest *hist, size_t n,
                          const struct sp_manifest *last)
{
  int k = 0;
  for (const struct sp_manifest *m = last; m && m->level != SP_LEVEL_FULL &&
       k < LEVEL_DEPTH_MAX; m = level_history_find(hist, n, m->parent))
    k++;
  return k;
}

enum sp_level level_choose(struct sp_level_req req, const char *copier_format, long full_every,
                           const struct sp_manifest *hist, size_t n, char **why)
{
  const struct sp_manifest *last = n ? &hist[n - 1] : NULL;
  if (!req.is_auto && req.level == SP_LEVEL_FULL)
    return SP_LEVEL_FULL;
  /* A raw copier writes whole disks: it cannot make an overlay. */
  if (strcmp(copier_format, "raw") == 0) {
    if (!req.is_auto)
      *why = sp_xstrdup("copier_format = raw: the copier writes whole disks, never overlays");
    return SP_LEVEL_FULL;
  }
  if (!last) {
    if (!req.is_auto)
      *why = sp_xstrdup("no previous point of this domain");
    return SP_LEVEL_FULL;
  }
  if (!req.is_auto)
    return req.level;
  if (full_every > 0 && level_incs_since_full(hist, n, last) >= full_every)
    return SP_LEVEL_FULL; /* the policy's normal rhythm, not a warning */
  return SP_LEVEL_INC;
}
