/* How many copiers of a point run at once (agent/copy_parallel.c): an
 * explicit parallel is kept as it is; auto copies an incremental's (or a
 * differential's) disks at once, up to a cap, and a point with any disk
 * copied whole one disk at a time. */
#include "unit.h"

#include "copy_parallel.h"

static void explicit_count_is_kept(void **state)
{
  enum sp_level full[] = { SP_LEVEL_FULL, SP_LEVEL_FULL };
  enum sp_level inc[] = { SP_LEVEL_INC, SP_LEVEL_INC };
  assert_int_equal(copy_parallel(1, inc, 2), 1);
  assert_int_equal(copy_parallel(4, full, 2), 4);
  assert_int_equal(copy_parallel(64, inc, 2), 64); /* the pool caps it at the disks */
}

static void auto_overlaps_incrementals(void **state)
{
  enum sp_level two[] = { SP_LEVEL_INC, SP_LEVEL_INC };
  enum sp_level diff[] = { SP_LEVEL_DIFF, SP_LEVEL_DIFF, SP_LEVEL_DIFF };
  enum sp_level one[] = { SP_LEVEL_INC };
  assert_int_equal(copy_parallel(0, two, 2), 2);
  assert_int_equal(copy_parallel(0, diff, 3), 3);
  assert_int_equal(copy_parallel(0, one, 1), 1);
}

static void auto_is_capped(void **state)
{
  enum sp_level many[9];
  for (size_t i = 0; i < 9; i++)
    many[i] = SP_LEVEL_INC;
  assert_int_equal(copy_parallel(0, many, 9), COPY_PARALLEL_AUTO_MAX);
  assert_int_equal(copy_parallel(0, many, COPY_PARALLEL_AUTO_MAX), COPY_PARALLEL_AUTO_MAX);
}

static void auto_copies_whole_disks_alone(void **state)
{
  enum sp_level full[] = { SP_LEVEL_FULL, SP_LEVEL_FULL };
  /* An incremental point with a disk new since its parent copies that
   * disk whole. */
  enum sp_level mixed[] = { SP_LEVEL_INC, SP_LEVEL_FULL, SP_LEVEL_INC };
  assert_int_equal(copy_parallel(0, full, 2), 1);
  assert_int_equal(copy_parallel(0, mixed, 3), 1);
}

static void never_less_than_one(void **state)
{
  assert_int_equal(copy_parallel(0, NULL, 0), 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(explicit_count_is_kept),
    cmocka_unit_test(auto_overlaps_incrementals),
    cmocka_unit_test(auto_is_capped),
    cmocka_unit_test(auto_copies_whole_disks_alone),
    cmocka_unit_test(never_less_than_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
