/* Whole-file hashing (sha256.c): the O_DIRECT path and its fall-backs give
 * the same digest as hashing the bytes in memory, from any offset, and the
 * caller's descriptor keeps its flags; a copy while hashing holds the
 * same bytes. */
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "sha256.h"

/* len bytes of a pattern (shift picks which bits of a Knuth hash) in a
 * fresh file dir/f: the bytes, the directory and the path come back. */
static unsigned char *pattern_file(size_t len, unsigned shift, char **dir, char **path)
{
  unsigned char *data = malloc(len + 1);
  assert_non_null(data);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char)(i * 2654435761u >> shift);
  *dir = unit_tmpdir();
  *path = unit_write(*dir, "f", data, len);
  return data;
}

static void check_file(size_t len, off_t from)
{
  char *dir, *path;
  unsigned char *data = pattern_file(len, 13, &dir, &path);
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

/* A copy while hashing: the same digest, the same bytes in the copy,
 * both descriptors' flags back, a short tail that O_DIRECT refuses
 * written all the same. */
static void check_copy(size_t len)
{
  char *dir, *path;
  unsigned char *data = pattern_file(len, 11, &dir, &path);
  char want[SP_SHA256_HEX_LEN + 1], got[SP_SHA256_HEX_LEN + 1];
  assert_int_equal(sp_sha256_hex(data, len, want), 0);
  int in = open(path, O_RDONLY | O_CLOEXEC);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int out = openat(dfd, "copy", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(in >= 0 && out >= 0);
  int iflags = fcntl(in, F_GETFL), oflags = fcntl(out, F_GETFL);
  struct sp_err e = { 0 };
  assert_int_equal(sp_sha256_copy(in, out, got, &e), 0);
  assert_string_equal(got, want);
  assert_int_equal(fcntl(in, F_GETFL), iflags);
  assert_int_equal(fcntl(out, F_GETFL), oflags);
  unsigned char *back = malloc(len + 1);
  assert_non_null(back);
  assert_int_equal(pread(out, back, len + 1, 0), (ssize_t)len);
  assert_memory_equal(back, data, len);
  close(in);
  close(out);
  unlinkat(dfd, "copy", 0);
  close(dfd);
  unlink(path);
  rmdir(dir);
  free(back);
  free(path);
  free(dir);
  free(data);
}

static void copies_of_any_size(void **state)
{
  check_copy(0);
  check_copy(1);
  check_copy(8192);
  check_copy((9u << 20) + 123); /* more than two direct blocks, a short tail */
  check_copy((37u << 20) + 5);  /* the copy's ring of four wraps twice */
}

/* A write that fails (a full disk) stops the copy with an error that says
 * so, the reader and writer threads stopped; so does a read that fails. */
static void a_failed_copy_fails(void **state)
{
  char *dir = unit_tmpdir();
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int in = openat(dfd, "in", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(dfd >= 0 && in >= 0);
  assert_int_equal(ftruncate(in, 20 << 20), 0);
  int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
  assert_true(full >= 0);
  char got[SP_SHA256_HEX_LEN + 1];
  struct sp_err e = { 0 };
  assert_int_equal(sp_sha256_copy(in, full, got, &e), -1);
  assert_non_null(strstr(e.msg, "write"));
  sp_err_clear(&e);
  int out = openat(dfd, "out", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_int_equal(sp_sha256_copy(dfd, out, got, &e), -1); /* a directory to read */
  assert_non_null(strstr(e.msg, "read"));
  close(out);
  close(full);
  close(in);
  unlinkat(dfd, "in", 0);
  unlinkat(dfd, "out", 0);
  close(dfd);
  rmdir(dir);
  free(dir);
}

/* Not seekable: no O_DIRECT, the reader thread reads it as it comes. */
static void from_a_pipe(void **state)
{
  int p[2];
  assert_int_equal(pipe(p), 0);
  static const char text[] = "abc";
  assert_int_equal(write(p[1], text, 3), 3);
  close(p[1]);
  char got[SP_SHA256_HEX_LEN + 1];
  struct sp_err e = { 0 };
  assert_int_equal(sp_sha256_fd(p[0], got, &e), 0);
  assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  close(p[0]);
}

/* A failed read (a directory) is an error that names it, not a digest. */
static void a_read_error_fails(void **state)
{
  char *dir = unit_tmpdir();
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  char got[SP_SHA256_HEX_LEN + 1];
  struct sp_err e = { 0 };
  assert_int_equal(sp_sha256_fd(fd, got, &e), -1);
  assert_non_null(strstr(e.msg, "read"));
  close(fd);
  rmdir(dir);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(whole_files_of_any_size),
    cmocka_unit_test(from_an_offset),
    cmocka_unit_test(from_a_pipe),
    cmocka_unit_test(copies_of_any_size),
    cmocka_unit_test(a_read_error_fails),
    cmocka_unit_test(a_failed_copy_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
