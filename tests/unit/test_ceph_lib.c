/* librados and librbd loaded at run time (ceph/ceph_lib.c): every function
 * the list names is found in the libraries the build's headers came from,
 * and one round trip through the table works without a cluster. */
#include "unit.h"

#include "ceph_lib.h"

static void loads_every_function(void **state)
{
  struct sp_err e = { 0 };
  assert_int_equal(sp_ceph_lib_load(&e), 0);
  /* Twice is once: the table is filled a single time. */
  assert_int_equal(sp_ceph_lib_load(&e), 0);
  /* Each name reads its function from the table (ceph_lib.h). */
#define NOT_NULL(f) assert_true((f) != NULL);
  SP_CEPH_RADOS_FNS(NOT_NULL)
  SP_CEPH_RBD_FNS(NOT_NULL)
#undef NOT_NULL
}

static void calls_through_the_table(void **state)
{
  struct sp_err e = { 0 };
  assert_int_equal(sp_ceph_lib_load(&e), 0);
  /* rados_create makes a handle without reaching any monitor. */
  rados_t c = NULL;
  assert_int_equal(rados_create(&c, "admin"), 0);
  assert_non_null(c);
  assert_int_equal(rados_conf_set(c, "rados_osd_op_timeout", "7"), 0);
  char buf[16];
  assert_int_equal(rados_conf_get(c, "rados_osd_op_timeout", buf, sizeof buf), 0);
  assert_string_equal(buf, "7");
  rados_shutdown(c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(loads_every_function),
    cmocka_unit_test(calls_through_the_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
