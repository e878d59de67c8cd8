#include "plan.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void sp_plan_init(struct sp_plan *p, uint64_t size, uint64_t cluster, sp_seg_fn *emit, void *ud)
{
  assert(cluster && (cluster & (cluster - 1)) == 0);
  *p = (struct sp_plan){ .size = size, .cluster = cluster, .ckind = -1, .emit = emit,
                         .ud = ud };
}

/* Adds whole clusters [off, off+len) of one kind to the open segment. */
static void add_clusters(struct sp_plan *p, uint64_t off, uint64_t len, enum sp_kind kind)
{
  if (p->open.len && p->open.kind == kind && p->open.off + p->open.len == off) {
    p->open.len += len;
    return;
  }
  if (p->open.len)
    p->emit(p->ud, &p->open);
  p->open = (struct sp_seg){ .off = off, .len = len, .kind = kind };
}

void sp_plan_feed(struct sp_plan *p, uint64_t off, uint64_t len, enum sp_kind kind)
{
  assert(off == p->pos && len <= p->size - off);
  const uint64_t end = off + len, mask = p->cluster - 1;
  while (p->pos < end) {
    uint64_t cstart = p->pos & ~mask;
    uint64_t cend = p->size - cstart > p->cluster ? cstart + p->cluster : p->size;
    if (p->pos == cstart && end >= cend) {
      /* Whole clusters in one go: up to the last cluster end within the
       * range (the disk's end counts as one, aligned or not). */
      uint64_t whole_end = end == p->size ? end : end & ~mask;
      add_clusters(p, p->pos, whole_end - p->pos, kind);
      p->pos = whole_end;
      continue;
    }
    uint64_t stop = end < cend ? end : cend;
    p->ckind = p->ckind < 0 ? (int)kind : p->ckind == (int)kind ? p->ckind : SP_DATA;
    p->pos = stop;
    if (p->pos == cend) {
      add_clusters(p, cstart, cend - cstart, (enum sp_kind)p->ckind);
      p->ckind = -1;
    }
  }
}

void sp_plan_finish(struct sp_plan *p)
{
  assert(p->pos == p->size && p->ckind < 0);
  if (p->open.len)
    p->emit(p->ud, &p->open);
  p->open.len = 0;
}

void sp_segq_push(struct sp_segq *q, const struct sp_seg *seg)
{
  if (q->n == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 64;
    struct sp_seg *v = sp_xreallocarray(NULL, cap, sizeof *v);
    /* Unwrap the ring into the new array. */
    for (size_t i = 0; i < q->n; i++)
      v[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
  }
  q->v[(q->head + q->n) % q->cap] = *seg;
  q->n++;
  q->bytes += seg->len;
}

const struct sp_seg *sp_segq_peek(const struct sp_segq *q)
{
  return q->n ? &q->v[q->head] : NULL;
}

bool sp_segq_take(struct sp_segq *q, uint64_t max, struct sp_seg *out)
{
  if (q->n == 0)
    return false;
  struct sp_seg *s = &q->v[q->head];
  *out = *s;
  if (s->len > max) {
    out->len = max;
    s->off += max;
    s->len -= max;
  } else {
    q->head = (q->head + 1) % q->cap;
    q->n--;
  }
  q->bytes -= out->len;
  return true;
}

void sp_segq_free(struct sp_segq *q)
{
  free(q->v);
  *q = (struct sp_segq){ 0 };
}
