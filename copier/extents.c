#include "extents.h"

#include <stdbool.h>
#include <stdlib.h>

#include "xalloc.h"

#define STATE_ZERO 2u /* LIBNBD_STATE_ZERO, kept here so this file needs no libnbd */

void sp_extents_push(struct sp_extents *x, uint64_t len, uint32_t flags)
{
  if (len == 0)
    return;
  if (x->n && x->v[x->n - 1].flags == flags) {
    x->v[x->n - 1].len += len;
    return;
  }
  if (x->n == x->cap) {
    x->cap = x->cap ? 2 * x->cap : 64;
    x->v = sp_xreallocarray(x->v, x->cap, sizeof *x->v);
  }
  x->v[x->n++] = (struct sp_extent){ .len = len, .flags = flags };
}

uint64_t sp_extents_total(const struct sp_extents *x)
{
  uint64_t t = 0;
  for (size_t i = 0; i < x->n; i++)
    t += x->v[i].len;
  return t;
}

void sp_extents_reset(struct sp_extents *x)
{
  x->n = 0;
}

void sp_extents_free(struct sp_extents *x)
{
  free(x->v);
  *x = (struct sp_extents){ 0 };
}

/* A cursor over one list; a missing list is one endless extent. */
struct cursor {
  const struct sp_extents *x;
  size_t i;
  uint64_t left; /* bytes left in extent i */
  uint32_t flags;
};

static bool cursor_load(struct cursor *c, uint32_t missing_flags)
{
  if (!c->x) {
    c->left = UINT64_MAX;
    c->flags = missing_flags;
    return true;
  }
  while (c->i < c->x->n && c->x->v[c->i].len == 0)
    c->i++;
  if (c->i >= c->x->n)
    return false;
  c->left = c->x->v[c->i].len;
  c->flags = c->x->v[c->i].flags;
  return true;
}

static enum sp_kind kind_of(uint32_t alloc_flags, uint32_t dirty_flags)
{
  if (!(dirty_flags & SP_DIRTY_FLAG))
    return SP_SKIP;
  return (alloc_flags & STATE_ZERO) ? SP_ZERO : SP_DATA;
}

uint64_t sp_extents_classify(const struct sp_extents *alloc, const struct sp_extents *dirty,
                             uint64_t off, uint64_t end, sp_piece_fn *fn, void *ud)
{
  struct cursor a = { .x = alloc }, d = { .x = dirty };
  bool more = cursor_load(&a, 0) && cursor_load(&d, SP_DIRTY_FLAG);
  uint64_t pos = off, run_off = off;
  enum sp_kind run_kind = SP_SKIP;

  while (more && pos < end) {
    uint64_t step = a.left < d.left ? a.left : d.left;
    if (step > end - pos)
      step = end - pos;
    enum sp_kind k = kind_of(a.flags, d.flags);
    /* Runs of one kind reach fn as one call, however the lists cut them. */
    if (pos > run_off && k != run_kind) {
      fn(ud, run_off, pos - run_off, run_kind);
      run_off = pos;
    }
    run_kind = k;
    pos += step;
    a.left -= a.x ? step : 0;
    d.left -= d.x ? step : 0;
    if (a.left == 0) {
      a.i++;
      more = cursor_load(&a, 0);
    }
    if (d.left == 0) {
      d.i++;
      more = more && cursor_load(&d, SP_DIRTY_FLAG);
    }
  }
  if (pos > run_off)
    fn(ud, run_off, pos - run_off, run_kind);
  return pos;
}
