/* backup_on_stop's hand-off (hook/handoff_choice.c): systemd-run only
 * where systemd runs and systemd-run can be executed, the double fork
 * everywhere else; the systemd-run command line is an argv with a per-VM
 * unit name. */
#include "unit.h"

#include "handoff_choice.h"

static void systemd_run_only_where_systemd_runs(void **state)
{
  assert_int_equal(hook_handoff_choose(true, true), HOOK_HANDOFF_SYSTEMD_RUN);
  /* This machine's case: no /run/systemd/system. */
  assert_int_equal(hook_handoff_choose(false, true), HOOK_HANDOFF_DOUBLE_FORK);
  assert_int_equal(hook_handoff_choose(false, false), HOOK_HANDOFF_DOUBLE_FORK);
  /* systemd runs, but its systemd-run is missing (a minimal image). */
  assert_int_equal(hook_handoff_choose(true, false), HOOK_HANDOFF_DOUBLE_FORK);
  assert_string_equal(hook_handoff_name(HOOK_HANDOFF_SYSTEMD_RUN), "systemd-run");
  assert_string_equal(hook_handoff_name(HOOK_HANDOFF_DOUBLE_FORK), "a double fork");
}

static void systemd_run_argv(void **state)
{
  struct hook_handoff_argv a;
  const char *uuid = "0ff1ce00-5eed-4a11-8b0b-000000000017";
  assert_int_equal(hook_handoff_systemd_argv(&a, "/usr/sbin/stillpoint-hook",
                                             "/usr/bin/stillpoint", "win 11; rm -rf /", uuid,
                                             4242, NULL), 0);
  const char *want[] = { "/usr/bin/systemd-run",
                         "--unit=stillpoint-backup-on-stop-0ff1ce00-5eed-4a11-8b0b-000000000017",
                         "--collect", "--quiet", "--", "/usr/sbin/stillpoint-hook",
                         "--backup-on-stop", "/usr/bin/stillpoint",
                         "win 11; rm -rf /", /* one word, never seen by a shell */
                         uuid, "4242", NULL };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (want[i])
      assert_string_equal(a.argv[i], want[i]);
    else
      assert_null(a.argv[i]);
}

static void confdir_goes_to_the_unit(void **state)
{
  struct hook_handoff_argv a;
  assert_int_equal(hook_handoff_systemd_argv(&a, "/h", "/b", "d",
                                             "0FF1CE00-5EED-4A11-8B0B-000000000017", 7,
                                             "/etc/stillpoint test"), 0);
  assert_string_equal(a.argv[4], "--setenv=STILLPOINT_CONFDIR=/etc/stillpoint test");
  assert_string_equal(a.argv[5], "--");
  assert_string_equal(a.argv[11], "7");
  assert_null(a.argv[12]);
}

static void refuses_what_cannot_be_a_unit(void **state)
{
  struct hook_handoff_argv a;
  const char *bad[] = { NULL, "", "0ff1ce00-5eed-4a11-8b0b-00000000001", /* 35 */
                        "0ff1ce00-5eed-4a11-8b0b-0000000000170", "0ff1ce00_5eed-4a11-8b0b-000000000017",
                        "0ff1ce00-5eed-4a11-8b0b-00000000001g", "../../../etc/passwd-aaaaaaaaaaaaaaa" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(hook_handoff_systemd_argv(&a, "/h", "/b", "d", bad[i], 7, NULL), -1);
  const char *u = "0ff1ce00-5eed-4a11-8b0b-000000000017";
  assert_int_equal(hook_handoff_systemd_argv(&a, "/h", "/b", "d", u, 0, NULL), -1);
  assert_int_equal(hook_handoff_systemd_argv(&a, NULL, "/b", "d", u, 7, NULL), -1);
  char long_dir[5000];
  memset(long_dir, 'x', sizeof long_dir - 1);
  long_dir[sizeof long_dir - 1] = '\0';
  assert_int_equal(hook_handoff_systemd_argv(&a, "/h", "/b", "d", u, 7, long_dir), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(systemd_run_only_where_systemd_runs),
    cmocka_unit_test(systemd_run_argv),
    cmocka_unit_test(confdir_goes_to_the_unit),
    cmocka_unit_test(refuses_what_cannot_be_a_unit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
