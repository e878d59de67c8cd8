/* Whole-file hashing (sha256.c): the O_DIRECT path and its fall-backs give
 * the same digest as hashing the bytes in memory, from any offset, and the
 * caller's descriptor keeps its flags. */
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "sha256.h"

static void check_file(size_t len, off_t from)
{
  unsigned char *data = malloc(len);
  assert_non_null(data);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char)(i * 2654435761u >> 13);
  char *dir = unit_tmpdir();
  char *path = unit_write(dir, "f", data, len);
  char want[SP_SHA256_HEX_LEN + 1], got[SP_SHA256_HEX_LEN + 1];
  assert_int_equal(sp_sha256_hex(data + from, len - (size_t)from, want), 0);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(lseek(fd, from, SEEK_SET), from);
  int flags = fcntl(fd, F_GETFL);
  struct sp_err e = { 0 };
  assert_int_equal(sp_sha256_fd(fd, got, &e), 0);
  assert_string_equal(got, want);
  assert_int_equal(fcntl(fd, F_GETFL), flags);
  close(fd);
  unlink(path);
  rmdir(dir);
  free(path);
  free(dir);
  free(data);
}

static void whole_files_of_any_size(void **state)
{
  check_file(0, 0);
  check_file(1, 0);
  check_file(4096, 0);
  check_file((9u << 20) + 123, 0); /* more than two direct reads, a short tail */
}

static void from_an_offset(void **state)
{
  check_file((5u << 20) + 7, 4096); /* aligned: direct */
  check_file((5u << 20) + 7, 1000); /* unaligned: the page cache */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(whole_files_of_any_size),
    cmocka_unit_test(from_an_offset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
