#include "level_choice.h"

#include <stdio.h>
#include <string.h>

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
  for (const struct sp_manifest *m = last; m && strcmp(m->level, "full") != 0 &&
       k < LEVEL_DEPTH_MAX; m = level_history_find(hist, n, m->parent))
    k++;
  return k;
}

const char *level_choose(const char *req, const char *copier_format, long full_every,
                         const struct sp_manifest *hist, size_t n, char **why)
{
  const struct sp_manifest *last = n ? &hist[n - 1] : NULL;
  if (strcmp(req, "full") == 0)
    return "full";
  /* A raw copier writes whole disks: it cannot make an overlay. */
  if (strcmp(copier_format, "raw") == 0) {
    if (strcmp(req, "auto") != 0 &&
        asprintf(why, "copier_format = raw: the copier writes whole disks, never overlays") < 0)
      *why = NULL;
    return "full";
  }
  if (!last) {
    if (strcmp(req, "auto") != 0 && asprintf(why, "no previous point of this domain") < 0)
      *why = NULL;
    return "full";
  }
  if (strcmp(req, "auto") != 0)
    return req;
  if (full_every > 0 && level_incs_since_full(hist, n, last) >= full_every)
    return "full"; /* the policy's normal rhythm, not a warning */
  return "inc";
}
