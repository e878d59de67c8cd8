/* Path checks that keep restore inside its directories (fsutil.c). */
#include "unit.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
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

static mode_t mode_of(const char *p)
{
  struct stat st;
  assert_int_equal(lstat(p, &st), 0);
  return st.st_mode & 07777;
}

/* Whatever the umask and whoever made it first: the mode asked for. */
static void dir_ensure_creates_and_repairs(void **state)
{
  char *t = unit_tmpdir();
  char *d = NULL, *link = NULL, *file = NULL, *deep = NULL;
  assert_true(asprintf(&d, "%s/own", t) > 0 && asprintf(&link, "%s/link", t) > 0 &&
              asprintf(&file, "%s/file", t) > 0 && asprintf(&deep, "%s/a/b/c", t) > 0);
  mode_t old = umask(077);
  struct sp_err e = { 0 };
  assert_int_equal(sp_dir_ensure(d, 0711, getuid(), getgid(), &e), 0);
  assert_int_equal(mode_of(d), 0711);
  assert_int_equal(chmod(d, 0700), 0);
  assert_int_equal(sp_dir_ensure(d, 0711, getuid(), getgid(), &e), 0);
  assert_int_equal(mode_of(d), 0711);
  /* a symlink or a file in its place is refused, never followed */
  assert_int_equal(symlink(d, link), 0);
  assert_int_equal(sp_dir_ensure(link, 0711, getuid(), getgid(), &e), -1);
  assert_non_null(strstr(e.msg, "is not a directory"));
  free(unit_write(t, "file", "x", 1));
  assert_int_equal(sp_dir_ensure(file, 0711, getuid(), getgid(), &e), -1);
  /* the parent must exist */
  assert_int_equal(sp_dir_ensure(deep, 0711, getuid(), getgid(), &e), -1);
  /* mkdir -p: the mode of what it makes is set, not left to the umask */
  assert_int_equal(sp_mkdir_p(deep, 0711, &e), 0);
  char *a = NULL;
  assert_true(asprintf(&a, "%s/a", t) > 0);
  assert_int_equal(mode_of(a), 0711);
  assert_int_equal(mode_of(deep), 0711);
  umask(old);
  assert_int_equal(sp_rm_rf(t, &e), 0);
  free(a);
  free(d);
  free(link);
  free(file);
  free(deep);
  free(t);
}

/* A point's files: a FIFO or device in a file's place is refused without
 * waiting for a writer, an oversize file before it is read, a hard link
 * because it may be a file outside the point. */
static void read_at_refuses_fifos_links_and_oversize(void **state)
{
  char *t = unit_tmpdir();
  int dfd = open(t, O_RDONLY | O_DIRECTORY);
  assert_true(dfd >= 0);
  free(unit_write(t, "ok", "hello", 5));
  assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
  assert_int_equal(linkat(dfd, "ok", dfd, "twin", 0), 0);
  struct sp_err e = { 0 };
  char *buf = NULL;
  size_t len;
  /* two links: neither name is read */
  assert_int_equal(sp_read_file_at(dfd, "ok", 100, &buf, &len, &e), -1);
  assert_non_null(strstr(e.msg, "2 links"));
  assert_int_equal(unlinkat(dfd, "twin", 0), 0);
  assert_int_equal(sp_read_file_at(dfd, "ok", 100, &buf, &len, &e), 0);
  assert_int_equal(len, 5);
  free(buf);
  assert_int_equal(sp_read_file_at(dfd, "ok", 4, &buf, &len, &e), -1);
  assert_non_null(strstr(e.msg, "larger than 4 bytes"));
  assert_int_equal(sp_read_file_at(dfd, "fifo", 100, &buf, &len, &e), -1);
  assert_non_null(strstr(e.msg, "fifo is a FIFO"));
  assert_int_equal(e.code, SP_EXIT_PREFLIGHT);
  /* a sparse file far larger than the cap costs nothing to refuse */
  int big = openat(dfd, "big", O_WRONLY | O_CREAT, 0600);
  assert_int_equal(ftruncate(big, (off_t)1 << 40), 0);
  close(big);
  assert_int_equal(sp_read_file_at(dfd, "big", 1 << 20, &buf, &len, &e), -1);
  assert_non_null(strstr(e.msg, "larger than"));
  assert_int_equal(sp_read_file_at(dfd, "../x", 100, &buf, &len, &e), -1);
  close(dfd);
  assert_int_equal(sp_rm_rf(t, &e), 0);
  free(t);
}

/* Created, never replacing; an undo removes only the file it made. */
static void create_never_replaces(void **state)
{
  char *t = unit_tmpdir();
  int dfd = open(t, O_RDONLY | O_DIRECTORY);
  struct sp_err e = { 0 };
  struct stat made;
  assert_int_equal(sp_create_file_at(dfd, "new", "abc", 3, 0600, (uid_t)-1, (gid_t)-1, &made,
                                     &e), 0);
  assert_int_equal(sp_create_file_at(dfd, "new", "xyz", 3, 0600, (uid_t)-1, (gid_t)-1, NULL,
                                     &e), -1);
  assert_non_null(strstr(e.msg, "new exists"));
  assert_int_equal(symlinkat("/etc/passwd", dfd, "link"), 0);
  assert_int_equal(sp_create_file_at(dfd, "link", "xyz", 3, 0600, (uid_t)-1, (gid_t)-1, NULL,
                                     &e), -1);
  char *buf = NULL;
  size_t len;
  assert_int_equal(sp_read_file_at(dfd, "new", 10, &buf, &len, &e), 0);
  assert_string_equal(buf, "abc");
  free(buf);
  struct stat st;
  assert_int_equal(fstatat(dfd, "new", &st, 0), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  /* replaced by another file since: the undo leaves it (the old one
   * kept under another name, so its inode number is not reused) */
  assert_int_equal(renameat(dfd, "new", dfd, "old"), 0);
  free(unit_write(t, "new", "other", 5));
  assert_int_equal(sp_unlink_if_same(dfd, "new", &made), -1);
  assert_int_equal(fstatat(dfd, "new", &st, 0), 0);
  assert_int_equal(fstatat(dfd, "new", &made, 0), 0);
  assert_int_equal(sp_unlink_if_same(dfd, "new", &made), 0);
  assert_int_equal(fstatat(dfd, "new", &st, 0), -1);
  close(dfd);
  assert_int_equal(sp_rm_rf(t, &e), 0);
  free(t);
}

/* rm -rf through directory descriptors: nested trees, links removed as
 * links, a file outside untouched, a missing name fine. */
static void rm_rf_at_stays_inside(void **state)
{
  char *t = unit_tmpdir();
  char *outside = unit_write(t, "outside", "keep", 4);
  char *p = NULL;
  assert_true(asprintf(&p, "%s/tree/a/b/c", t) > 0);
  struct sp_err e = { 0 };
  assert_int_equal(sp_mkdir_p(p, 0700, &e), 0);
  free(p);
  assert_true(asprintf(&p, "%s/tree/a", t) > 0);
  free(unit_write(p, "f", "x", 1));
  free(p);
  assert_true(asprintf(&p, "%s/tree/a/b/evil", t) > 0);
  assert_int_equal(symlink(t, p), 0);
  free(p);
  assert_true(asprintf(&p, "%s/tree/a/b/c/out", t) > 0);
  assert_int_equal(symlink(outside, p), 0);
  free(p);
  int dfd = open(t, O_RDONLY | O_DIRECTORY);
  assert_int_equal(sp_rm_rf_at(dfd, "tree", &e), 0);
  assert_int_equal(sp_rm_rf_at(dfd, "tree", &e), 0);
  assert_int_equal(sp_rm_rf_at(dfd, "..", &e), -1);
  assert_true(sp_exists(outside));
  close(dfd);
  assert_int_equal(sp_rm_rf(t, &e), 0);
  assert_false(sp_exists(t));
  free(outside);
  free(t);
}

/* O_DIRECT probed on the descriptor: a file on ext4 takes it and keeps
 * its flags, a socket does not; a closed descriptor is no. */
static void direct_io_probe(void **state)
{
  (void)state;
  char *t = unit_tmpdir();
  char *f = unit_write(t, "f", "x", 1);
  int fd = open(f, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  struct statfs sfs;
  assert_int_equal(fstatfs(fd, &sfs), 0);
  if (sfs.f_type == EXT4_SUPER_MAGIC)
    assert_true(sp_direct_io_ok(fd));
  assert_int_equal(fcntl(fd, F_GETFL) & O_DIRECT, 0);
  close(fd);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_false(sp_direct_io_ok(sv[0]));
  close(sv[0]);
  close(sv[1]);
  assert_false(sp_direct_io_ok(sv[0]));
  struct sp_err e = { 0 };
  assert_int_equal(sp_rm_rf(t, &e), 0);
  free(f);
  free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(relpaths),
    cmocka_unit_test(open_beneath_refuses_escapes),
    cmocka_unit_test(write_read_roundtrip),
    cmocka_unit_test(dir_ensure_creates_and_repairs),
    cmocka_unit_test(read_at_refuses_fifos_links_and_oversize),
    cmocka_unit_test(create_never_replaces),
    cmocka_unit_test(rm_rf_at_stays_inside),
    cmocka_unit_test(direct_io_probe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
