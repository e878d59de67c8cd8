#include "retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "point_layout.h"
#include "xalloc.h"

/* Chains are acyclic when written by stillpoint; a crafted one is cut here. */
#define RETENTION_DEPTH_MAX 1000

size_t retention_find(const struct retention *r, const char *id)
{
  for (size_t i = 0; id && i < r->n; i++)
    if (strcmp(r->m[i]->id, id) == 0)
      return i;
  return RETENTION_NONE;
}

size_t retention_disk_parent(const struct retention *r, const struct sp_manifest_disk *d)
{
  static const char prefix[] = "../../";
  if (!d->parent_file || strncmp(d->parent_file, prefix, strlen(prefix)) != 0)
    return RETENTION_NONE;
  const char *s = d->parent_file + strlen(prefix);
  char id[SP_POINT_ID_MAX];
  snprintf(id, sizeof id, "%.*s", (int)strcspn(s, "/"), s);
  return retention_find(r, id);
}

void retention_keep_newest(struct retention *r, long keep)
{
  for (size_t i = 0; i < r->n; i++)
    r->kept[i] = keep <= 0 || i + (size_t)keep >= r->n;
}

static bool needs_unkept(const struct retention *r, size_t i, int depth)
{
  if (depth > RETENTION_DEPTH_MAX)
    return true;
  const struct sp_manifest *m = r->m[i];
  for (size_t k = 0; k < m->ndisks; k++) {
    if (!m->disks[k].parent_file)
      continue;
    size_t q = retention_disk_parent(r, &m->disks[k]);
    if (q == RETENTION_NONE || !r->kept[q] || needs_unkept(r, q, depth + 1))
      return true;
  }
  return false;
}

bool retention_needs_unkept(const struct retention *r, size_t i)
{
  return needs_unkept(r, i, 0);
}

static void keep_chain_of(struct retention *r, size_t i, int depth)
{
  const struct sp_manifest *m = r->m[i];
  for (size_t k = 0; depth < RETENTION_DEPTH_MAX && k < m->ndisks; k++) {
    size_t q = retention_disk_parent(r, &m->disks[k]);
    if (q != RETENTION_NONE) {
      r->kept[q] = true;
      keep_chain_of(r, q, depth + 1);
    }
  }
}

void retention_keep_chain_of(struct retention *r, size_t i)
{
  keep_chain_of(r, i, 0);
}

static void set_str(char **field, const char *value)
{
  free(*field);
  *field = value ? sp_xstrdup(value) : NULL;
}

void retention_merged_manifest(struct sp_manifest *m)
{
  for (size_t i = 0; i < m->ndisks; i++) {
    struct sp_manifest_disk *d = &m->disks[i];
    if (!d->parent_file)
      continue;
    d->level = SP_LEVEL_FULL;
    set_str(&d->parent_file, NULL);
    set_str(&d->image_format, "qcow2");
  }
  m->level = SP_LEVEL_FULL;
  set_str(&m->parent, NULL);
  set_str(&m->full, NULL);
  set_str(&m->parent_checkpoint, NULL);
}

size_t retention_chain_full(const struct retention *r, size_t i)
{
  for (int depth = 0; i != RETENTION_NONE && depth < RETENTION_DEPTH_MAX; depth++) {
    if (r->m[i]->level == SP_LEVEL_FULL)
      return i;
    i = retention_find(r, r->m[i]->parent);
  }
  return RETENTION_NONE;
}

void retention_fix_full_ids(struct retention *r, bool *changed)
{
  for (size_t i = 0; i < r->n; i++) {
    struct sp_manifest *m = r->m[i];
    if (!r->kept[i] || m->level == SP_LEVEL_FULL)
      continue;
    size_t f = retention_chain_full(r, i);
    if (f == RETENTION_NONE || (m->full && strcmp(m->full, r->m[f]->id) == 0))
      continue;
    set_str(&m->full, r->m[f]->id);
    changed[i] = true;
  }
}

void retention_checkpoints_needed(const struct retention *r, long keep, bool *needed)
{
  for (size_t i = 0; i < r->n; i++)
    needed[i] = false;
  if (r->n == 0)
    return;
  size_t last = r->n - 1;
  needed[last] = true;
  size_t i = last;
  for (int depth = 0; i != RETENTION_NONE && depth < RETENTION_DEPTH_MAX; depth++) {
    if (keep > 0 || r->m[i]->level == SP_LEVEL_FULL)
      needed[i] = true;
    if (r->m[i]->level == SP_LEVEL_FULL)
      break;
    i = retention_find(r, r->m[i]->parent);
  }
}
