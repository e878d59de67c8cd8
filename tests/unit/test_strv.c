/* The string vector (common/strv.c): what the lists built one name at a
 * time rely on. */
#include "unit.h"

#include "cleanup.h"
#include "strv.h"

static void empty_is_null(void **state)
{
  (void)state;
  struct sp_strv sv = SP_STRV_INIT;
  assert_null(sv.v);
  assert_int_equal(sp_strv_count(&sv), 0);
  size_t n = 99;
  assert_null(sp_strv_steal(&sv, &n));
  assert_int_equal(n, 0);
  sp_strv_free(&sv); /* freeing an empty one is fine */
  assert_null(sv.v);
}

static void push_copies_and_terminates(void **state)
{
  (void)state;
  _cleanup_(sp_strv_free) struct sp_strv sv = SP_STRV_INIT;
  char name[] = "tpm2-00.permall";
  sp_strv_push(&sv, name);
  name[0] = 'X'; /* a copy: the caller's buffer may change */
  sp_strv_push(&sv, "");
  sp_strv_push(&sv, ".lock");
  assert_int_equal(sp_strv_count(&sv), 3);
  assert_string_equal(sv.v[0], "tpm2-00.permall");
  assert_string_equal(sv.v[1], "");
  assert_string_equal(sv.v[2], ".lock");
  assert_null(sv.v[3]); /* NULL-terminated after every push */
}

static void push_take_owns(void **state)
{
  (void)state;
  _cleanup_(sp_strv_free) struct sp_strv sv = SP_STRV_INIT;
  char *s = strdup("K=V");
  assert_non_null(s);
  sp_strv_push_take(&sv, s);
  assert_ptr_equal(sv.v[0], s); /* the same string, freed by the vector */
  assert_null(sv.v[1]);
}

static void many_pushes_keep_order(void **state)
{
  (void)state;
  _cleanup_(sp_strv_free) struct sp_strv sv = SP_STRV_INIT;
  char buf[16];
  for (int i = 0; i < 1000; i++) {
    snprintf(buf, sizeof buf, "%d", i);
    sp_strv_push(&sv, buf);
    assert_null(sv.v[sv.n]);
  }
  assert_int_equal(sp_strv_count(&sv), 1000);
  for (int i = 0; i < 1000; i++) {
    snprintf(buf, sizeof buf, "%d", i);
    assert_string_equal(sv.v[i], buf);
  }
}

static void steal_hands_over_and_empties(void **state)
{
  (void)state;
  _cleanup_(sp_strv_free) struct sp_strv sv = SP_STRV_INIT;
  sp_strv_push(&sv, "a");
  sp_strv_push(&sv, "b");
  size_t n = 0;
  char **v = sp_strv_steal(&sv, &n);
  assert_int_equal(n, 2);
  assert_string_equal(v[0], "a");
  assert_string_equal(v[1], "b");
  assert_null(v[2]);
  assert_null(sv.v);
  assert_int_equal(sp_strv_count(&sv), 0);
  /* The vector can be used again after a steal. */
  sp_strv_push(&sv, "c");
  assert_int_equal(sp_strv_count(&sv), 1);
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
  assert_null(sp_strv_steal(&(struct sp_strv)SP_STRV_INIT, NULL));
}

static void free_leaves_it_reusable(void **state)
{
  (void)state;
  struct sp_strv sv = SP_STRV_INIT;
  sp_strv_push(&sv, "x");
  sp_strv_free(&sv);
  assert_null(sv.v);
  assert_int_equal(sv.n, 0);
  sp_strv_push(&sv, "y");
  assert_string_equal(sv.v[0], "y");
  sp_strv_free(&sv);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(empty_is_null),
    cmocka_unit_test(push_copies_and_terminates),
    cmocka_unit_test(push_take_owns),
    cmocka_unit_test(many_pushes_keep_order),
    cmocka_unit_test(steal_hands_over_and_empties),
    cmocka_unit_test(free_leaves_it_reusable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
