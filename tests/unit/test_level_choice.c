/* Which level the next point is (agent/level_choice.c): a request for full
 * is always met, a raw copier and a first point are always full (said when
 * an inc or diff was asked for), auto takes a full every full_every
 * incrementals, counted along the chain's parent links. */
#include "unit.h"

#include "level_choice.h"
#include "manifest.h"

/* The words the tests read best in, through the parsers of the edge. */
static void point(struct sp_manifest *m, const char *id, const char *level, const char *parent)
{
  memset(m, 0, sizeof *m);
  m->id = (char *)id;
  assert_int_equal(sp_level_parse(level, &m->level), 0);
  m->parent = (char *)parent;
}

static const char *choose(const char *req, const char *copier_format, long full_every,
                          const struct sp_manifest *hist, size_t n, char **why)
{
  struct sp_level_req r;
  assert_int_equal(sp_level_req_parse(req, &r), 0);
  return sp_level_name(level_choose(r, copier_format, full_every, hist, n, why));
}

static void asked_full_and_first_point(void **state)
{
  char *why = NULL;
  assert_string_equal(choose("full", "qcow2", 3, NULL, 0, &why), "full");
  assert_null(why);
  assert_string_equal(choose("auto", "qcow2", 3, NULL, 0, &why), "full");
  assert_null(why); /* auto's first full is no surprise */
  assert_string_equal(choose("diff", "qcow2", 3, NULL, 0, &why), "full");
  assert_non_null(strstr(why, "no previous point"));
  free(why);
}

static void raw_copier_is_always_full(void **state)
{
  struct sp_manifest h[1];
  point(&h[0], "1", "full", NULL);
  char *why = NULL;
  assert_string_equal(choose("auto", "raw", 0, h, 1, &why), "full");
  assert_null(why);
  assert_string_equal(choose("inc", "raw", 0, h, 1, &why), "full");
  assert_non_null(strstr(why, "copier_format = raw"));
  free(why);
}

static void asked_level_is_kept(void **state)
{
  struct sp_manifest h[2];
  point(&h[0], "1", "full", NULL);
  point(&h[1], "2", "inc", "1");
  char *why = NULL;
  assert_string_equal(choose("diff", "qcow2", 1, h, 2, &why), "diff");
  assert_string_equal(choose("inc", "qcow2", 1, h, 2, &why), "inc");
  assert_null(why);
}

static void auto_rhythm(void **state)
{
  struct sp_manifest h[6];
  point(&h[0], "1", "full", NULL);
  point(&h[1], "2", "inc", "1");
  point(&h[2], "3", "inc", "2");
  point(&h[3], "4", "diff", "1");
  point(&h[4], "5", "inc", "3");
  point(&h[5], "6", "inc", "5");
  char *why = NULL;
  assert_int_equal(level_incs_since_full(h, 6, &h[5]), 4); /* 6 5 3 2 */
  assert_int_equal(level_incs_since_full(h, 6, &h[3]), 1); /* a diff counts once */
  assert_int_equal(level_incs_since_full(h, 6, &h[0]), 0);
  assert_string_equal(choose("auto", "qcow2", 4, h, 6, &why), "full");
  assert_string_equal(choose("auto", "qcow2", 5, h, 6, &why), "inc");
  assert_string_equal(choose("auto", "qcow2", 0, h, 6, &why), "inc"); /* never */
  assert_string_equal(choose("auto", "qcow2", 2, h, 4, &why), "inc"); /* after 4 */
  assert_null(why);
  /* A broken chain counts what it can reach; a cycle ends. */
  h[2].parent = "gone";
  assert_int_equal(level_incs_since_full(h, 6, &h[5]), 3);
  h[2].parent = "6";
  assert_true(level_incs_since_full(h, 6, &h[5]) >= 1000);
  assert_string_equal(choose("auto", "qcow2", 3, h, 6, &why), "full");
  assert_ptr_equal(level_history_find(h, 6, "4"), &h[3]);
  assert_null(level_history_find(h, 6, NULL));
  assert_null(level_history_find(h, 6, "7"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(asked_full_and_first_point),
    cmocka_unit_test(raw_copier_is_always_full),
    cmocka_unit_test(asked_level_is_kept),
    cmocka_unit_test(auto_rhythm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
