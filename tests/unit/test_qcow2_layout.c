/* The qcow2 image the copier lays out itself (copier/qcow2_layout.c):
 * where each part goes, what the head and the tail say, and that the
 * coordinator's own header reader (agent/image_check.c) takes the header.
 * End to end, qemu-img check and compare read every image the copier
 * writes (tests/e2e/test_copy.py). */
#include "unit.h"

#include "image_check.h"
#include "qcow2_layout.h"

#define C SP_QCOW2_CLUSTER

static uint64_t be(const unsigned char *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* Every cluster a walk renders, kept by its index in the file. */
struct file {
  unsigned char *c[64];
  uint64_t first, n;
};

static int keep(void *ud, uint64_t index, const unsigned char *buf)
{
  struct file *f = ud;
  if (!f->n)
    f->first = index;
  assert_int_equal(index, f->first + f->n);
  assert_true(f->n < 64);
  f->c[f->n] = malloc(C);
  memcpy(f->c[f->n++], buf, C);
  return 0;
}

static void file_free(struct file *f)
{
  for (uint64_t i = 0; i < f->n; i++)
    free(f->c[i]);
}

static void render(const struct sp_qcow2_layout *l, const uint64_t *holes, struct file *head,
                   struct file *tail)
{
  unsigned char *buf = malloc(C);
  assert_int_equal(sp_qcow2_render_head(l, buf, keep, head), 0);
  assert_int_equal(sp_qcow2_render_tail(l, holes, buf, keep, tail), 0);
  free(buf);
}

static void map_marks(void **state)
{
  struct sp_qcow2_map m;
  struct sp_err e = { 0 };
  assert_int_equal(sp_qcow2_map_init(&m, 3 * C + 100, &e), 0);
  assert_int_equal(m.nclusters, 4);
  sp_qcow2_map_mark(&m, 0, 1, true);         /* a byte makes its cluster */
  sp_qcow2_map_mark(&m, C, 2 * C, false);   /* zero: clusters 1 and 2 */
  sp_qcow2_map_mark(&m, 2 * C + 5, 1, true); /* data wins over zero */
  sp_qcow2_map_mark(&m, 0, 1, false);        /* and stays data */
  sp_qcow2_map_mark(&m, 10 * C, C, true);    /* past the end: ignored */
  assert_true(sp_qcow2_map_is_data(&m, 0) && !sp_qcow2_map_is_zero(&m, 0));
  assert_true(!sp_qcow2_map_is_data(&m, 1) && sp_qcow2_map_is_zero(&m, 1));
  assert_true(sp_qcow2_map_is_data(&m, 2) && !sp_qcow2_map_is_zero(&m, 2));
  assert_false(sp_qcow2_map_is_data(&m, 3) || sp_qcow2_map_is_zero(&m, 3));
  assert_false(sp_qcow2_map_is_data(&m, 10));
  sp_qcow2_map_free(&m);
}

static void full_image(void **state)
{
  /* Four guest clusters, the last one short; data in 0 and 2. */
  struct sp_qcow2_map m;
  struct sp_err e = { 0 };
  const uint64_t vsize = 3 * C + 100;
  assert_int_equal(sp_qcow2_map_init(&m, vsize, &e), 0);
  sp_qcow2_map_mark(&m, 0, C, true);
  sp_qcow2_map_mark(&m, 2 * C, C, true);
  struct sp_qcow2_layout l;
  assert_int_equal(sp_qcow2_layout(&l, vsize, &m, NULL, &e), 0);
  /* header, reftable, L1 | data 3, 4 | L2 5 | refblock 6 */
  assert_int_equal(l.reftable, 1);
  assert_int_equal(l.l1, 1);
  assert_int_equal(l.data, 2);
  assert_int_equal(l.l2, 1);
  assert_int_equal(l.refblocks, 1);
  assert_int_equal(l.total, 7);
  assert_int_equal(sp_qcow2_data_at(&l), 3);

  uint64_t holes[1] = { 1u << 1 }; /* the second data cluster read as zeroes */
  struct file head = { 0 }, tail = { 0 };
  render(&l, holes, &head, &tail);
  assert_int_equal(head.n, 3);
  assert_int_equal(tail.first, 5);
  assert_int_equal(tail.n, 2);

  const unsigned char *h = head.c[0];
  assert_int_equal(be(h, 4), 0x514649fb);
  assert_int_equal(be(h + 4, 4), 3);
  assert_int_equal(be(h + 8, 8), 0);   /* no backing file */
  assert_int_equal(be(h + 20, 4), 16); /* 64 KiB clusters */
  assert_int_equal(be(h + 24, 8), vsize);
  assert_int_equal(be(h + 36, 4), 1);  /* L1 entries */
  assert_int_equal(be(h + 40, 8), 2 * C);
  assert_int_equal(be(h + 48, 8), C);
  assert_int_equal(be(h + 56, 4), 1);
  assert_int_equal(be(h + 72, 8), 0);  /* no incompatible features */
  assert_int_equal(be(h + 96, 4), 4);  /* 16-bit refcounts */
  assert_int_equal(be(h + 100, 4), 104);
  assert_int_equal(be(h + 104, 8), 0); /* the end of the extensions */

  const uint64_t copied = 1ull << 63;
  assert_int_equal(be(head.c[1], 8), 6 * C); /* the refcount block */
  assert_int_equal(be(head.c[1] + 8, 8), 0);
  assert_int_equal(be(head.c[2], 8), 5 * C | copied); /* the L2 table */
  assert_int_equal(be(head.c[2] + 8, 8), 0);

  const unsigned char *l2 = tail.c[0];
  assert_int_equal(be(l2, 8), 3 * C | copied);
  assert_int_equal(be(l2 + 8, 8), 0);
  assert_int_equal(be(l2 + 16, 8), 1); /* read as zeroes: a zero cluster */
  assert_int_equal(be(l2 + 24, 8), 0);

  const unsigned char *rb = tail.c[1];
  for (int c = 0; c < 8; c++)
    assert_int_equal(be(rb + 2 * c, 2), c < 7 && c != 4);

  struct sp_qcow2_header ph;
  assert_int_equal(sp_qcow2_header_parse(h, C, &ph, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&ph, "vda.qcow2", NULL, &e), 0);
  file_free(&head);
  file_free(&tail);
  sp_qcow2_map_free(&m);
}

static void overlay_image(void **state)
{
  /* 1 GiB: two L1 entries; a zero cluster under the second only. */
  struct sp_qcow2_map m;
  struct sp_err e = { 0 };
  const uint64_t vsize = 1ull << 30, half = vsize / 2;
  assert_int_equal(sp_qcow2_map_init(&m, vsize, &e), 0);
  sp_qcow2_map_mark(&m, half + 3 * C, C, false);
  const char *parent = "../../20261126T063000Z-full/disks/vda.qcow2";
  struct sp_qcow2_layout l;
  assert_int_equal(sp_qcow2_layout(&l, vsize, &m, parent, &e), 0);
  assert_int_equal(l.l1_entries, 2);
  assert_int_equal(l.data, 0);
  assert_int_equal(l.l2, 1);
  assert_int_equal(l.total, 5);

  uint64_t holes[1] = { 0 };
  struct file head = { 0 }, tail = { 0 };
  render(&l, holes, &head, &tail);
  const unsigned char *h = head.c[0];
  assert_int_equal(be(h + 104, 4), 0xe2792aca);
  assert_int_equal(be(h + 108, 4), 5);
  assert_memory_equal(h + 112, "qcow2\0\0\0", 8);
  assert_int_equal(be(h + 120, 8), 0);
  assert_int_equal(be(h + 8, 8), 128);
  assert_int_equal(be(h + 16, 4), strlen(parent));
  assert_memory_equal(h + 128, parent, strlen(parent));
  assert_int_equal(be(head.c[2], 8), 0); /* nothing under the first half */
  assert_int_equal(be(head.c[2] + 8, 8), 3 * C | 1ull << 63);
  assert_int_equal(be(tail.c[0] + 3 * 8, 8), 1);

  struct sp_qcow2_header ph;
  assert_int_equal(sp_qcow2_header_parse(h, C, &ph, &e), 0);
  assert_int_equal(sp_qcow2_header_check(&ph, "vda.qcow2", parent, &e), 0);
  assert_string_equal(ph.backing_format, "qcow2");
  file_free(&head);
  file_free(&tail);
  sp_qcow2_map_free(&m);
}

static void refcounts_count_themselves(void **state)
{
  /* 40,000 data clusters need two refcount blocks (32,768 clusters each). */
  struct sp_qcow2_map m;
  struct sp_err e = { 0 };
  const uint64_t vsize = 40000ull * C;
  assert_int_equal(sp_qcow2_map_init(&m, vsize, &e), 0);
  sp_qcow2_map_mark(&m, 0, vsize, true);
  struct sp_qcow2_layout l;
  assert_int_equal(sp_qcow2_layout(&l, vsize, &m, NULL, &e), 0);
  assert_int_equal(l.l2, 5);
  assert_int_equal(l.refblocks, 2);
  assert_int_equal(l.total, 1 + 1 + 1 + 40000 + 5 + 2);
  /* A file just under one block's reach keeps one. */
  sp_qcow2_map_free(&m);
  const uint64_t fits = 32768 - 1 - 1 - 1 - 4 - 1;
  assert_int_equal(sp_qcow2_map_init(&m, fits * C, &e), 0);
  sp_qcow2_map_mark(&m, 0, fits * C, true);
  assert_int_equal(sp_qcow2_layout(&l, fits * C, &m, NULL, &e), 0);
  assert_int_equal(l.total, 32768);
  assert_int_equal(l.refblocks, 1);
  sp_qcow2_map_free(&m);
}

static void long_backing_name_refused(void **state)
{
  struct sp_qcow2_map m;
  struct sp_err e = { 0 };
  assert_int_equal(sp_qcow2_map_init(&m, C, &e), 0);
  char name[1100];
  memset(name, 'a', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  struct sp_qcow2_layout l;
  assert_int_equal(sp_qcow2_layout(&l, C, &m, name, &e), -1);
  assert_non_null(strstr(e.msg, "longer than 1023"));
  sp_qcow2_map_free(&m);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(map_marks),
    cmocka_unit_test(full_image),
    cmocka_unit_test(overlay_image),
    cmocka_unit_test(refcounts_count_themselves),
    cmocka_unit_test(long_backing_name_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
