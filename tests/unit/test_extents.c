/* Classifying block status: how the two meta contexts combine into
 * skip / zero / data ranges (copier/extents.c). */
#include "unit.h"

#include "extents.h"

struct piece {
  uint64_t off, len;
  enum sp_kind kind;
};

struct got {
  struct piece p[32];
  size_t n;
};

static void collect(void *ud, uint64_t off, uint64_t len, enum sp_kind kind)
{
  struct got *g = ud;
  assert_true(g->n < 32);
  g->p[g->n++] = (struct piece){ off, len, kind };
}

static void push(struct sp_extents *x, uint64_t len, uint32_t flags)
{
  sp_extents_push(x, len, flags);
}

#define HOLE_ZERO 3u
#define ZERO 2u

static void full_copy_uses_allocation_only(void **state)
{
  struct sp_extents alloc = { 0 };
  push(&alloc, 4096, 0);
  push(&alloc, 8192, HOLE_ZERO);
  push(&alloc, 4096, ZERO); /* allocated zeroes (write -z): still zero */
  push(&alloc, 4096, 1);    /* a hole that does not read as zero: data */
  struct got g = { 0 };
  uint64_t end = sp_extents_classify(&alloc, NULL, 1000, 1000 + 20480, collect, &g);
  assert_int_equal(end, 1000 + 20480);
  assert_int_equal(g.n, 3);
  assert_int_equal(g.p[0].off, 1000);
  assert_int_equal(g.p[0].len, 4096);
  assert_int_equal(g.p[0].kind, SP_DATA);
  /* The two zero extents reach fn as one run. */
  assert_int_equal(g.p[1].len, 12288);
  assert_int_equal(g.p[1].kind, SP_ZERO);
  assert_int_equal(g.p[2].kind, SP_DATA);
  sp_extents_free(&alloc);
}

static void incremental_intersects_dirty(void **state)
{
  struct sp_extents alloc = { 0 }, dirty = { 0 };
  push(&alloc, 100, 0);
  push(&alloc, 100, HOLE_ZERO);
  push(&alloc, 100, 0);
  push(&dirty, 50, 0);
  push(&dirty, 200, SP_DIRTY_FLAG);
  push(&dirty, 50, 0);
  struct got g = { 0 };
  assert_int_equal(sp_extents_classify(&alloc, &dirty, 0, 300, collect, &g), 300);
  assert_int_equal(g.n, 5);
  const struct piece want[] = {
    { 0, 50, SP_SKIP }, { 50, 50, SP_DATA }, { 100, 100, SP_ZERO },
    { 200, 50, SP_DATA }, { 250, 50, SP_SKIP },
  };
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(g.p[i].off, want[i].off);
    assert_int_equal(g.p[i].len, want[i].len);
    assert_int_equal(g.p[i].kind, want[i].kind);
  }
  sp_extents_free(&alloc);
  sp_extents_free(&dirty);
}

static void stops_where_the_shorter_list_ends(void **state)
{
  struct sp_extents alloc = { 0 }, dirty = { 0 };
  push(&alloc, 1 << 20, 0);
  push(&dirty, 4096, SP_DIRTY_FLAG);
  struct got g = { 0 };
  assert_int_equal(sp_extents_classify(&alloc, &dirty, 0, 1 << 20, collect, &g), 4096);
  assert_int_equal(g.n, 1);
  /* ... and never past the window, whatever the server sent. */
  g.n = 0;
  assert_int_equal(sp_extents_classify(&alloc, NULL, 0, 100, collect, &g), 100);
  assert_int_equal(g.p[0].len, 100);
  /* An empty list covers nothing: the caller must not loop forever. */
  struct sp_extents empty = { 0 };
  g.n = 0;
  assert_int_equal(sp_extents_classify(&alloc, &empty, 7, 100, collect, &g), 7);
  assert_int_equal(g.n, 0);
  sp_extents_free(&alloc);
  sp_extents_free(&dirty);
}

static void no_server_contexts_means_all_data(void **state)
{
  struct got g = { 0 };
  assert_int_equal(sp_extents_classify(NULL, NULL, 0, 12345, collect, &g), 12345);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.p[0].kind, SP_DATA);
}

static void push_merges_and_grows(void **state)
{
  struct sp_extents x = { 0 };
  for (int i = 0; i < 1000; i++)
    push(&x, 10, (uint32_t)(i % 2));
  push(&x, 5, 1);
  push(&x, 0, 0); /* empty extents are dropped */
  assert_int_equal(x.n, 1000);
  assert_int_equal(x.v[999].len, 15);
  assert_int_equal(sp_extents_total(&x), 10005);
  sp_extents_reset(&x);
  assert_int_equal(x.n, 0);
  sp_extents_free(&x);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(full_copy_uses_allocation_only),
    cmocka_unit_test(incremental_intersects_dirty),
    cmocka_unit_test(stops_where_the_shorter_list_ends),
    cmocka_unit_test(no_server_contexts_means_all_data),
    cmocka_unit_test(push_merges_and_grows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
