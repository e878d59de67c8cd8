/* Coarsening to clusters and cutting requests (copier/plan.c). */
#include "unit.h"

#include "plan.h"

#define CL 65536u

struct segs {
  struct sp_seg s[64];
  size_t n;
};

static void collect(void *ud, const struct sp_seg *seg)
{
  struct segs *g = ud;
  assert_true(g->n < 64);
  g->s[g->n++] = *seg;
}

static void expect(const struct segs *g, size_t i, uint64_t off, uint64_t len, enum sp_kind k)
{
  assert_true(i < g->n);
  assert_int_equal(g->s[i].off, off);
  assert_int_equal(g->s[i].len, len);
  assert_int_equal(g->s[i].kind, k);
}

static void aligned_runs_pass_through_merged(void **state)
{
  struct segs g = { 0 };
  struct sp_plan p;
  sp_plan_init(&p, 8 * CL, CL, collect, &g);
  sp_plan_feed(&p, 0, 2 * CL, SP_DATA);
  sp_plan_feed(&p, 2 * CL, CL, SP_DATA); /* same kind: one segment */
  sp_plan_feed(&p, 3 * CL, 3 * CL, SP_ZERO);
  sp_plan_feed(&p, 6 * CL, 2 * CL, SP_SKIP);
  sp_plan_finish(&p);
  assert_int_equal(g.n, 3);
  expect(&g, 0, 0, 3 * CL, SP_DATA);
  expect(&g, 1, 3 * CL, 3 * CL, SP_ZERO);
  expect(&g, 2, 6 * CL, 2 * CL, SP_SKIP);
}

static void mixed_cluster_becomes_data(void **state)
{
  struct segs g = { 0 };
  struct sp_plan p;
  sp_plan_init(&p, 4 * CL, CL, collect, &g);
  /* Cluster 0: half clean, half dirty zero -> read it whole (data). */
  sp_plan_feed(&p, 0, CL / 2, SP_SKIP);
  sp_plan_feed(&p, CL / 2, CL / 2 + CL, SP_ZERO); /* and cluster 1 all zero */
  /* Cluster 2: 4 KiB of data inside zeroes. */
  sp_plan_feed(&p, 2 * CL, 4096, SP_ZERO);
  sp_plan_feed(&p, 2 * CL + 4096, 4096, SP_DATA);
  sp_plan_feed(&p, 2 * CL + 8192, CL - 8192 + CL, SP_SKIP);
  sp_plan_finish(&p);
  assert_int_equal(g.n, 4);
  expect(&g, 0, 0, CL, SP_DATA);
  expect(&g, 1, CL, CL, SP_ZERO);
  expect(&g, 2, 2 * CL, CL, SP_DATA);
  expect(&g, 3, 3 * CL, CL, SP_SKIP);
}

static void unaligned_disk_end(void **state)
{
  /* A disk whose size is not a multiple of the cluster: the last, short
   * cluster is a cluster like any other, and nothing is cut off. */
  const uint64_t size = 3 * CL + 512;
  struct segs g = { 0 };
  struct sp_plan p;
  sp_plan_init(&p, size, CL, collect, &g);
  sp_plan_feed(&p, 0, 3 * CL, SP_SKIP);
  sp_plan_feed(&p, 3 * CL, 256, SP_SKIP);
  sp_plan_feed(&p, 3 * CL + 256, 256, SP_DATA);
  sp_plan_finish(&p);
  assert_int_equal(g.n, 2);
  expect(&g, 1, 3 * CL, 512, SP_DATA);

  g.n = 0;
  sp_plan_init(&p, size, CL, collect, &g);
  sp_plan_feed(&p, 0, size, SP_DATA);
  sp_plan_finish(&p);
  assert_int_equal(g.n, 1);
  expect(&g, 0, 0, size, SP_DATA);
}

static void windows_may_end_inside_a_cluster(void **state)
{
  /* Block status windows that end mid-cluster carry the partial cluster's
   * kind over to the next window. */
  struct segs g = { 0 };
  struct sp_plan p;
  sp_plan_init(&p, 2 * CL, CL, collect, &g);
  sp_plan_feed(&p, 0, 1000, SP_ZERO);
  assert_int_equal(g.n, 0);
  sp_plan_feed(&p, 1000, CL - 1000, SP_ZERO);
  sp_plan_feed(&p, CL, 10, SP_ZERO);
  sp_plan_feed(&p, CL + 10, 10, SP_DATA);
  sp_plan_feed(&p, CL + 20, CL - 20, SP_ZERO);
  sp_plan_finish(&p);
  assert_int_equal(g.n, 2);
  expect(&g, 0, 0, CL, SP_ZERO);
  expect(&g, 1, CL, CL, SP_DATA);
}

static void queue_cuts_aligned_requests(void **state)
{
  struct sp_segq q = { 0 };
  struct sp_seg a = { .off = 0, .len = 5 * CL + 512, .kind = SP_DATA };
  struct sp_seg b = { .off = 10 * CL, .len = CL, .kind = SP_ZERO };
  sp_segq_push(&q, &a);
  sp_segq_push(&q, &b);
  assert_int_equal(q.bytes, 6 * CL + 512);
  struct sp_seg out;
  uint64_t expect_off[] = { 0, 2 * CL, 4 * CL };
  uint64_t expect_len[] = { 2 * CL, 2 * CL, CL + 512 };
  for (int i = 0; i < 3; i++) {
    assert_true(sp_segq_take(&q, 2 * CL, &out));
    assert_int_equal(out.off, expect_off[i]);
    assert_int_equal(out.len, expect_len[i]);
    assert_int_equal(out.kind, SP_DATA);
  }
  assert_int_equal(sp_segq_peek(&q)->kind, SP_ZERO);
  assert_true(sp_segq_take(&q, 1u << 30, &out));
  assert_int_equal(out.off, 10 * CL);
  assert_false(sp_segq_take(&q, CL, &out));
  assert_null(sp_segq_peek(&q));
  assert_int_equal(q.bytes, 0);
  sp_segq_free(&q);
}

static void queue_wraps_and_grows(void **state)
{
  /* Interleave pushes and takes so the ring wraps before it grows: order
   * must survive the unwrap. */
  struct sp_segq q = { 0 };
  struct sp_seg s, out;
  uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 7; i++, next_in++) {
      s = (struct sp_seg){ .off = next_in * CL, .len = CL, .kind = SP_DATA };
      sp_segq_push(&q, &s);
    }
    for (int i = 0; i < 5; i++, next_out++) {
      assert_true(sp_segq_take(&q, CL, &out));
      assert_int_equal(out.off, next_out * CL);
    }
  }
  while (sp_segq_take(&q, CL, &out))
    assert_int_equal(out.off, (next_out++) * CL);
  assert_int_equal(next_out, next_in);
  sp_segq_free(&q);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(aligned_runs_pass_through_merged),
    cmocka_unit_test(mixed_cluster_becomes_data),
    cmocka_unit_test(unaligned_disk_end),
    cmocka_unit_test(windows_may_end_inside_a_cluster),
    cmocka_unit_test(queue_cuts_aligned_requests),
    cmocka_unit_test(queue_wraps_and_grows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
