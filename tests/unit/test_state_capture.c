/* Capture of a TPM-like state tree: temp files, stability, write-back
 * (state_capture.c). */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "state_capture.h"
#include "state_locator.h"

static void reads_flat_tree_sorted_without_lock(void **state)
{
  char *dir = unit_tmpdir();
  free(unit_write(dir, "tpm2-00.permall", "permall", 7));
  free(unit_write(dir, "tpm2-00.volatilestate", "vol", 3));
  free(unit_write(dir, ".lock", "", 0));
  struct sp_tree t;
  bool temp;
  struct sp_err e = { 0 };
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), 0);
  assert_false(temp);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.files[0].name, "tpm2-00.permall");
  assert_int_equal(t.files[0].len, 7);
  assert_memory_equal(t.files[0].data, "permall", 7);
  /* sha256("permall") as sha256sum prints it */
  char want[65];
  sp_sha256_hex("permall", 7, want);
  assert_string_equal(t.files[0].sha256, want);
  char d1[65];
  strcpy(d1, t.digest);
  sp_tree_free(&t);

  /* A swtpm temp file is reported and left out; the digest is unchanged. */
  free(unit_write(dir, "TMP2-00.permall", "half", 4));
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), 0);
  assert_true(temp);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.digest, d1);
  sp_tree_free(&t);

  /* Capture gives up within its bounds while the temp file stays. */
  struct sp_capture_stats st;
  assert_int_equal(sp_tree_capture(dir, 5, 1000, &t, &st, &e), -1);
  assert_int_equal(st.reads, 5);
  assert_int_equal(st.temp_seen, 5);
  assert_non_null(strstr(e.msg, "did not settle"));

  char *tmp = NULL;
  assert_true(asprintf(&tmp, "%s/TMP2-00.permall", dir) > 0);
  unlink(tmp);
  free(tmp);
  assert_int_equal(sp_tree_capture(dir, 5, 1000, &t, &st, &e), 0);
  assert_int_equal(st.reads, 2);
  assert_string_equal(t.digest, d1);

  /* Write back into another directory, modes kept. */
  char *out = unit_tmpdir();
  int dfd = open(out, O_RDONLY | O_DIRECTORY);
  t.files[0].mode = 0640;
  assert_int_equal(sp_tree_write_at(dfd, &t, false, &e), 0);
  close(dfd);
  struct sp_tree back;
  assert_int_equal(sp_tree_read(out, &back, &temp, &e), 0);
  assert_string_equal(back.digest, d1);
  assert_int_equal(back.files[0].mode, 0640);
  sp_tree_free(&back);
  sp_tree_free(&t);
  sp_rm_rf(out, &e);
  sp_rm_rf(dir, &e);
  free(out);
  free(dir);
}

static void refuses_symlinks_and_subdirs(void **state)
{
  char *dir = unit_tmpdir();
  char *p = NULL;
  assert_true(asprintf(&p, "%s/evil", dir) > 0);
  assert_int_equal(symlink("/etc/passwd", p), 0);
  struct sp_tree t;
  bool temp;
  struct sp_err e = { 0 };
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), -1);
  assert_non_null(strstr(e.msg, "evil"));
  unlink(p);
  assert_int_equal(mkdir(p, 0700), 0);
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), -1);
  assert_non_null(strstr(e.msg, "not a regular file"));
  sp_rm_rf(dir, &e);
  free(p);
  free(dir);
}

/* The rule both hosts' reads follow (the SFTP one has no unit of its own). */
static void tree_entry_kinds(void **state)
{
  assert_int_equal(sp_tree_entry_kind("."), SP_TREE_SKIP);
  assert_int_equal(sp_tree_entry_kind(".."), SP_TREE_SKIP);
  assert_int_equal(sp_tree_entry_kind(".lock"), SP_TREE_SKIP);
  assert_int_equal(sp_tree_entry_kind("TMP2-00.permall"), SP_TREE_TEMP);
  assert_int_equal(sp_tree_entry_kind("TMP"), SP_TREE_TEMP);
  assert_int_equal(sp_tree_entry_kind("tpm2-00.permall"), SP_TREE_FILE);
  assert_int_equal(sp_tree_entry_kind(".lock2"), SP_TREE_FILE);
  assert_int_equal(sp_tree_entry_kind("tmp-lower"), SP_TREE_FILE);
}

static void blob_capture(void **state)
{
  char *dir = unit_tmpdir();
  char *p = unit_write(dir, "VARS.fd", "0123456789", 10);
  struct sp_blob b;
  struct sp_capture_stats st;
  struct sp_err e = { 0 };
  assert_int_equal(sp_blob_capture(p, 4, 1000, &b, &st, &e), 0);
  assert_int_equal(st.reads, 2);
  assert_int_equal(b.len, 10);
  assert_string_equal(b.name, "VARS.fd");
  sp_blob_free(&b);
  assert_int_equal(sp_blob_read("/nonexistent/x", &b, &e), -1);
  assert_non_null(strstr(e.msg, "/nonexistent/x"));
  /* A FIFO is refused without waiting for a writer; a sparse file past
   * the 256 MiB cap before anything is allocated, in a tree too. */
  char *fifo = NULL, *big = NULL;
  assert_true(asprintf(&fifo, "%s/fifo", dir) > 0 && asprintf(&big, "%s/big", dir) > 0);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(sp_blob_read(fifo, &b, &e), -1);
  assert_non_null(strstr(e.msg, "not a regular file"));
  struct sp_tree t;
  bool temp;
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), -1);
  unlink(fifo);
  FILE *f = fopen(big, "w");
  assert_int_equal(ftruncate(fileno(f), (off_t)300 << 20), 0);
  fclose(f);
  assert_int_equal(sp_blob_read(big, &b, &e), -1);
  assert_non_null(strstr(e.msg, "larger than 256 MiB"));
  assert_int_equal(sp_tree_read(dir, &t, &temp, &e), -1);
  assert_non_null(strstr(e.msg, "larger than 256 MiB"));
  free(fifo);
  free(big);
  sp_rm_rf(dir, &e);
  free(p);
  free(dir);
}

/* sp_blob_map: the same blob as sp_blob_read, without the copy. */
static void blob_map(void **state)
{
  char *dir = unit_tmpdir();
  char *p = unit_write(dir, "VARS.fd", "0123456789", 10);
  char *empty = unit_write(dir, "empty", "", 0);
  chmod(p, 0640);
  struct sp_blob r, m;
  struct sp_err e = { 0 };
  assert_int_equal(sp_blob_read(p, &r, &e), 0);
  assert_int_equal(sp_blob_map(p, &m, &e), 0);
  assert_true(m.mapped);
  assert_false(r.mapped);
  assert_int_equal(m.len, 10);
  assert_memory_equal(m.data, r.data, 10);
  assert_string_equal(m.sha256, r.sha256);
  assert_string_equal(m.name, "VARS.fd");
  assert_int_equal(m.mode, 0640);
  sp_blob_free(&m);
  sp_blob_free(&r);
  /* An empty file cannot be mapped: it is read. */
  assert_int_equal(sp_blob_map(empty, &m, &e), 0);
  assert_false(m.mapped);
  assert_int_equal(m.len, 0);
  sp_blob_free(&m);
  assert_int_equal(sp_blob_map("/nonexistent/x", &m, &e), -1);
  assert_non_null(strstr(e.msg, "/nonexistent/x"));
  sp_rm_rf(dir, &e);
  free(empty);
  free(p);
  free(dir);
}

/* The preflight lists what the capture will read: a swtpm temporary
 * (written, then renamed over a state file) and .lock are not state, so a
 * TMP* seen mid-rename must not make the point refuse (CI, stop 24). */
static void locate_lists_state_files_only(void **state)
{
  char *dir = unit_tmpdir();
  free(unit_write(dir, "tpm2-00.permall", "permall", 7));
  free(unit_write(dir, "TMP2-00.permall", "half", 4));
  free(unit_write(dir, ".lock", "", 0));
  struct sp_domain d = { .name = "vm", .uuid = "u" };
  d.tpm.backend = SP_TPM_EMULATOR;
  d.tpm.version = "2.0";
  d.tpm.source_path = dir;
  struct sp_tpm_location loc;
  struct sp_err e = { 0 };
  assert_int_equal(sp_tpm_locate(&d, "/nonexistent", &loc, &e), 0);
  assert_true(loc.listable);
  assert_int_equal(loc.nfiles, 1);
  assert_true(loc.files[0].exists);
  assert_non_null(strstr(loc.files[0].path, "/tpm2-00.permall"));
  sp_tpm_location_free(&loc);
  sp_rm_rf(dir, &e);
  free(dir);
  (void)state;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(reads_flat_tree_sorted_without_lock),
    cmocka_unit_test(refuses_symlinks_and_subdirs),
    cmocka_unit_test(tree_entry_kinds),
    cmocka_unit_test(blob_capture),
    cmocka_unit_test(blob_map),
    cmocka_unit_test(locate_lists_state_files_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
