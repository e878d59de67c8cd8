/* Putting TPM state and NVRAM back (state_install.c): what counts as lost,
 * the layout libvirt expects, and what happens to what was there. */
#include "unit.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "state_install.h"

static mode_t mode_of(const char *path)
{
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return st.st_mode & 07777;
}

static void one_file_tree(struct sp_tree *t, const char *data)
{
  memset(t, 0, sizeof *t);
  t->n = 1;
  t->files = calloc(1, sizeof *t->files);
  t->files[0].name = strdup("tpm2-00.permall");
  t->files[0].data = (unsigned char *)strdup(data);
  t->files[0].len = strlen(data);
  t->files[0].mode = 0644; /* install sets 0600 whatever the tree says */
}

static void presence(void **state)
{
  char *dir = unit_tmpdir();
  char *tpm = NULL;
  assert_true(asprintf(&tpm, "%s/tpm2", dir) > 0);
  assert_int_equal(sp_tpm_presence(tpm, "tpm2"), SP_TPM_DIR_MISSING);
  assert_int_equal(mkdir(tpm, 0700), 0);
  free(unit_write(tpm, ".lock", "", 0));
  assert_int_equal(sp_tpm_presence(tpm, "tpm2"), SP_TPM_DIR_EMPTY);
  free(unit_write(tpm, "tpm2-00.volatilestate", "v", 1));
  assert_int_equal(sp_tpm_presence(tpm, "tpm2"), SP_TPM_FILE_MISSING);
  free(unit_write(tpm, "tpm2-00.permall", "p", 1));
  assert_int_equal(sp_tpm_presence(tpm, "tpm2"), SP_TPM_PRESENT);
  /* TPM 1.2 keeps its state in another file */
  assert_int_equal(sp_tpm_presence(tpm, "tpm1.2"), SP_TPM_FILE_MISSING);
  assert_string_equal(sp_tpm_state_file("tpm1.2"), "tpm-00.permall");
  struct sp_err e = { 0 };
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(tpm);
  free(dir);
}

static void install_layouts(void **state)
{
  char *dir = unit_tmpdir();
  char *parent = NULL, *tpm = NULL, *file = NULL;
  assert_true(asprintf(&parent, "%s/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", dir) > 0);
  assert_true(asprintf(&tpm, "%s/tpm2", parent) > 0);
  assert_true(asprintf(&file, "%s/tpm2-00.permall", tpm) > 0);
  struct sp_tree t;
  one_file_tree(&t, "state-1");
  struct sp_err e = { 0 };
  char *kept = NULL;

  /* Missing parent and directory: made as libvirt makes them. */
  assert_int_equal(sp_tpm_install(tpm, &t, getuid(), getgid(), true, &kept, &e), 0);
  assert_null(kept);
  assert_int_equal(mode_of(parent), 0711);
  assert_int_equal(mode_of(tpm), 0700);
  assert_int_equal(mode_of(file), 0600);
  char *buf = NULL;
  size_t len;
  assert_int_equal(sp_read_file(file, 100, &buf, &len, &e), 0);
  assert_string_equal(buf, "state-1");
  free(buf);

  /* An empty directory but for swtpm's lock: replaced, nothing kept. */
  assert_int_equal(sp_rm_rf(tpm, &e), 0);
  assert_int_equal(mkdir(tpm, 0755), 0);
  free(unit_write(tpm, ".lock", "", 0));
  assert_int_equal(sp_tpm_install(tpm, &t, getuid(), getgid(), true, &kept, &e), 0);
  assert_null(kept);
  assert_int_equal(mode_of(tpm), 0700);

  /* A directory with other files: moved aside (keep_old) or removed,
   * whole: its swtpm lock too (a put-back state must be as it was). */
  /* Many hidden files and one other: in any readdir order (ext4 lists by
   * hash) some hidden one comes before it. */
  assert_int_equal(sp_rm_rf(tpm, &e), 0);
  assert_int_equal(mkdir(tpm, 0700), 0);
  char hidden[31][8];
  for (size_t i = 0; i < 31; i++) {
    snprintf(hidden[i], sizeof hidden[i], ".h%02zu", i);
    free(unit_write(tpm, hidden[i], "", 0));
  }
  free(unit_write(tpm, ".lock", "", 0));
  free(unit_write(tpm, "junk", "j", 1));
  sp_tree_free(&t);
  one_file_tree(&t, "state-2");
  assert_int_equal(sp_tpm_install(tpm, &t, getuid(), getgid(), true, &kept, &e), 0);
  assert_non_null(kept);
  assert_non_null(strstr(kept, "/tpm2.replaced-"));
  char *junk = NULL, *lock = NULL;
  assert_true(asprintf(&junk, "%s/junk", kept) > 0 && asprintf(&lock, "%s/.lock", kept) > 0);
  assert_true(sp_exists(junk));
  assert_true(sp_exists(lock));
  for (size_t i = 0; i < 31; i++) {
    char *h = NULL;
    assert_true(asprintf(&h, "%s/%s", kept, hidden[i]) > 0);
    assert_true(sp_exists(h));
    free(h);
  }
  free(junk);
  free(lock);
  free(kept);
  assert_int_equal(sp_read_file(file, 100, &buf, &len, &e), 0);
  assert_string_equal(buf, "state-2");
  free(buf);
  assert_int_equal(sp_tpm_install(tpm, &t, getuid(), getgid(), false, &kept, &e), 0);
  assert_null(kept);
  /* only the one kept copy from before: the second old state was removed */
  int copies = 0;
  DIR *d = opendir(parent);
  struct dirent *de;
  while ((de = readdir(d)))
    copies += strncmp(de->d_name, "tpm2.replaced-", 14) == 0;
  closedir(d);
  assert_int_equal(copies, 1);

  /* Never through a symlink where the directory should be. */
  assert_int_equal(sp_rm_rf(tpm, &e), 0);
  assert_int_equal(symlink(dir, tpm), 0);
  assert_int_equal(sp_tpm_install(tpm, &t, getuid(), getgid(), true, &kept, &e), -1);
  assert_non_null(strstr(e.msg, "not a directory"));

  /* NVRAM: owner and mode as recorded. */
  struct sp_blob b = { .data = (unsigned char *)"vars", .len = 4, .mode = 0640,
                       .uid = getuid(), .gid = getgid() };
  char *nv = NULL;
  assert_true(asprintf(&nv, "%s/vm_VARS.fd", dir) > 0);
  assert_int_equal(sp_nvram_install(nv, &b, &e), 0);
  assert_int_equal(mode_of(nv), 0640);
  assert_int_equal(sp_read_file(nv, 100, &buf, &len, &e), 0);
  assert_string_equal(buf, "vars");
  free(buf);

  sp_tree_free(&t);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(nv);
  free(parent);
  free(tpm);
  free(file);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(presence),
    cmocka_unit_test(install_layouts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
