/* The zero check that turns read zeroes into write-zeroes (copier/iszero.h). */
#include "unit.h"

#include "iszero.h"

static void finds_any_nonzero_byte(void **state)
{
  static char buf[65536 + 7];
  assert_true(sp_is_zero(buf, 0));
  assert_true(sp_is_zero(buf, 1));
  assert_true(sp_is_zero(buf, sizeof buf));
  /* Every position, including inside the first 16 bytes, the boundary
   * of the shifted compare, and the very last byte. */
  const size_t where[] = { 0, 1, 15, 16, 17, 4095, 65535, sizeof buf - 1 };
  for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
    buf[where[i]] = 1;
    assert_false(sp_is_zero(buf, sizeof buf));
    assert_true(where[i] == 0 || sp_is_zero(buf, where[i]));
    buf[where[i]] = 0;
  }
  buf[20] = 1;
  assert_false(sp_is_zero(buf, 21));
  assert_true(sp_is_zero(buf, 20));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(finds_any_nonzero_byte),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
