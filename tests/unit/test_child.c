/* Reading back what a child wrote into a memfd (common/child.c): the
 * task pool's captured stdout and the copier's qemu-img info use it. */
#include "unit.h"

#include <sys/mman.h>
#include <unistd.h>

#include "child.h"

static int memfd_with(const char *text)
{
  int fd = memfd_create("test-child-output", MFD_CLOEXEC);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  return fd; /* its offset at the end, as a child leaves it */
}

static void whole_output_from_the_start(void **state)
{
  (void)state;
  int fd = memfd_with("line one\nline two\n");
  size_t len = 0;
  char *s = sp_child_output(fd, 1 << 20, &len);
  assert_string_equal(s, "line one\nline two\n");
  assert_int_equal(len, 18);
  free(s);
  close(fd);
}

static void empty_and_too_large(void **state)
{
  (void)state;
  int fd = memfd_with("");
  size_t len = 7;
  char *s = sp_child_output(fd, 16, &len);
  assert_string_equal(s, "");
  assert_int_equal(len, 0);
  free(s);
  close(fd);
  fd = memfd_with("seventeen bytes!!");
  assert_null(sp_child_output(fd, 16, NULL));
  s = sp_child_output(fd, 17, NULL);
  assert_string_equal(s, "seventeen bytes!!");
  free(s);
  close(fd);
  /* Not seekable: its size cannot be learnt. */
  int p[2];
  assert_int_equal(pipe(p), 0);
  assert_null(sp_child_output(p[0], 16, NULL));
  close(p[0]);
  close(p[1]);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(whole_output_from_the_start),
    cmocka_unit_test(empty_and_too_large),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
