/* The relative backing file name of an overlay (copier/backing_path.c). */
#include "unit.h"

#include <errno.h>

#include "backing_path.h"

static void check(const char *from, const char *to, const char *want)
{
  char *got = sp_backing_relpath(from, to);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

static void sibling_points(void **state)
{
  /* The layout of a backup target: the parent is a sibling point. */
  check("/b/vm/20261127T063000Z-inc.partial/disks",
        "/b/vm/20261126T063000Z-full/disks/vda.qcow2",
        "../../20261126T063000Z-full/disks/vda.qcow2");
  check("/b/vm/x/disks", "/b/vm/x/disks/vda.qcow2", "vda.qcow2");
  check("/b/vm/x/disks/", "/b/vm/x/disks//vda.qcow2", "vda.qcow2");
  check("/", "/a/b.qcow2", "a/b.qcow2");
  check("/a/b/c", "/z.qcow2", "../../../z.qcow2");
}

static void shared_prefix_is_by_component(void **state)
{
  /* "/b/vm1" and "/b/vm10" share /b only, not the characters "vm1". */
  check("/b/vm1/p/disks", "/b/vm10/q/disks/vda.qcow2", "../../../vm10/q/disks/vda.qcow2");
  check("//b///vm/p/disks", "/b/vm/q/disks/vda.qcow2", "../../q/disks/vda.qcow2");
}

static void refuses_what_is_not_a_file_path(void **state)
{
  errno = 0;
  assert_null(sp_backing_relpath("relative/dir", "/a/b"));
  assert_int_equal(errno, EINVAL);
  assert_null(sp_backing_relpath("/a", "b.qcow2"));
  assert_null(sp_backing_relpath("/a/b", "/a"));
  assert_null(sp_backing_relpath("/a/b", "/a/b/"));
  assert_null(sp_backing_relpath(NULL, "/a"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(sibling_points),
    cmocka_unit_test(shared_prefix_is_by_component),
    cmocka_unit_test(refuses_what_is_not_a_file_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
