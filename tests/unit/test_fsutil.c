/* Path checks that keep restore inside its directories (fsutil.c). */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

static void relpaths(void **state)
{
  assert_true(sp_relpath_ok("a"));
  assert_true(sp_relpath_ok("tpm/tpm2/tpm2-00.permall"));
  assert_true(sp_relpath_ok("..a/b..c"));
  assert_false(sp_relpath_ok(""));
  assert_false(sp_relpath_ok(NULL));
  assert_false(sp_relpath_ok("/etc/passwd"));
  assert_false(sp_relpath_ok(".."));
  assert_false(sp_relpath_ok("a/../../b"));
  assert_false(sp_relpath_ok("a/./b"));
  assert_false(sp_relpath_ok("a//b"));
  assert_false(sp_relpath_ok("a/"));
  assert_true(sp_name_ok("disk.qcow2"));
  assert_false(sp_name_ok("d/disk.qcow2"));
}

static void open_beneath_refuses_escapes(void **state)
{
  char *dir = unit_tmpdir();
  char *sub = NULL, *link = NULL;
  assert_true(asprintf(&sub, "%s/in", dir) > 0);
  assert_int_equal(mkdir(sub, 0700), 0);
  free(unit_write(sub, "ok", "x", 1));
  assert_true(asprintf(&link, "%s/in/evil", dir) > 0);
  assert_int_equal(symlink("/etc", link), 0);

  int base = open(sub, O_RDONLY | O_DIRECTORY);
  struct sp_err e = { 0 };
  int fd = sp_open_beneath(base, "ok", O_RDONLY, 0, &e);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(sp_open_beneath(base, "evil/passwd", O_RDONLY, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  assert_int_equal(sp_open_beneath(base, "../in/ok", O_RDONLY, 0, &e), -1);
  assert_int_equal(sp_open_beneath(base, "evil", O_WRONLY | O_CREAT, 0600, &e), -1);
  close(base);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  /* rm -rf did not follow the link into /etc. */
  assert_true(sp_exists("/etc/passwd"));
  free(sub);
  free(link);
  free(dir);
}

static void write_read_roundtrip(void **state)
{
  char *dir = unit_tmpdir();
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  struct sp_err e = { 0 };
  assert_int_equal(sp_write_file_at(dfd, "f", "hello", 5, 0600, &e), 0);
  assert_int_equal(sp_write_file_at(dfd, "../f", "x", 1, 0600, &e), -1);
  char *p = NULL, *buf = NULL;
  size_t len;
  assert_true(asprintf(&p, "%s/f", dir) > 0);
  assert_int_equal(sp_read_file(p, 100, &buf, &len, &e), 0);
  assert_int_equal(len, 5);
  assert_string_equal(buf, "hello");
  free(buf);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(sp_read_file(p, 3, &buf, &len, &e), -1);
  close(dfd);
  sp_rm_rf(dir, &e);
  free(p);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(relpaths),
    cmocka_unit_test(open_beneath_refuses_escapes),
    cmocka_unit_test(write_read_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
