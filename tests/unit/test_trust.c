/* StrictModes for stillpoint's directories (agent/trust.c). */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "trust.h"

static struct stat dir_stat(uid_t uid, mode_t mode)
{
  struct stat st = { 0 };
  st.st_mode = S_IFDIR | mode;
  st.st_uid = uid;
  return st;
}

/* The rule itself: owner root or us, nobody else writes; a root sticky
 * directory passes only above the last component. */
static void component_rule(void **state)
{
  struct sp_err e = { 0 };
  struct stat ok = dir_stat(0, 0755), gw = dir_stat(0, 0775), ow = dir_stat(0, 0757),
              tmp = dir_stat(0, 01777), other = dir_stat(geteuid() + 4242, 0700),
              mine = dir_stat(geteuid(), 0700);
  assert_int_equal(sp_trust_check_stat("target", "/t", &ok, true, &e), 0);
  assert_int_equal(sp_trust_check_stat("target", "/t", &mine, true, &e), 0);
  assert_int_equal(sp_trust_check_stat("target", "/t", &gw, false, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_non_null(strstr(e.msg, "writable by its group"));
  assert_non_null(strstr(e.msg, "chmod go-w /t"));
  assert_int_equal(sp_trust_check_stat("target", "/t", &ow, false, &e), -1);
  assert_non_null(strstr(e.msg, "writable by everyone"));
  assert_int_equal(sp_trust_check_stat("target", "/tmp", &tmp, false, &e), 0);
  assert_int_equal(sp_trust_check_stat("target", "/tmp", &tmp, true, &e), -1);
  assert_int_equal(sp_trust_check_stat("point", "/p", &other, true, &e), -1);
  assert_non_null(strstr(e.msg, "not root"));
  assert_non_null(strstr(e.msg, "chown root /p"));
  struct stat sticky_other = dir_stat(geteuid() + 4242, 01777);
  assert_int_equal(sp_trust_check_stat("target", "/x", &sticky_other, false, &e), -1);
}

/* On real directories: a group-writable component anywhere on the way
 * is found, a missing tail is fine for a directory still to be made. */
static void walks_every_component(void **state)
{
  char *t = unit_tmpdir();
  char *a = NULL, *b = NULL, *missing = NULL, *link = NULL;
  assert_true(asprintf(&a, "%s/a", t) > 0 && asprintf(&b, "%s/a/b", t) > 0 &&
              asprintf(&missing, "%s/a/b/c/d", t) > 0 && asprintf(&link, "%s/l", t) > 0);
  struct sp_err e = { 0 };
  assert_int_equal(chmod(t, 0700), 0);
  assert_int_equal(sp_mkdir_p(b, 0700, &e), 0);
  int fd = sp_trusted_dir_open("target", b, &e);
  if (fd < 0)
    fail_msg("%s", e.msg);
  close(fd);
  assert_int_equal(sp_trusted_path_check("target", missing, &e), 0);
  /* a symlink the administrator made is resolved first */
  assert_int_equal(symlink(b, link), 0);
  fd = sp_trusted_dir_open("target", link, &e);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(chmod(a, 0770), 0);
  assert_int_equal(sp_trusted_dir_open("target", b, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_non_null(strstr(e.msg, a));
  assert_int_equal(sp_trusted_path_check("target", missing, &e), -1);
  assert_int_equal(chmod(a, 0700), 0);
  assert_int_equal(chmod(b, 0702), 0);
  assert_int_equal(sp_trusted_dir_open("point", b, &e), -1);
  assert_non_null(strstr(e.msg, "writable by everyone"));
  assert_int_equal(chmod(b, 0700), 0);
  if (geteuid() == 0) {
    assert_int_equal(chown(b, 65534, 65534), 0);
    assert_int_equal(sp_trusted_dir_open("point", b, &e), -1);
    assert_non_null(strstr(e.msg, "not root"));
  }
  assert_int_equal(sp_rm_rf(t, &e), 0);
  free(a);
  free(b);
  free(missing);
  free(link);
  free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(component_rule),
    cmocka_unit_test(walks_every_component),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
