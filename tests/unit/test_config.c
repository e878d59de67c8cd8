/* The INI loader: precedence, and a clear file:line:key error for every
 * kind of bad input (config.c). */
#include "unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fsutil.h"

struct fx {
  char *dir;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof *f);
  f->dir = unit_tmpdir();
  char *vmd = NULL;
  assert_true(asprintf(&vmd, "%s/vm.d", f->dir) > 0);
  assert_int_equal(mkdir(vmd, 0700), 0);
  free(vmd);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  struct sp_err e = { 0 };
  sp_rm_rf(f->dir, &e);
  free(f->dir);
  free(f);
  return 0;
}

static void put(struct fx *f, const char *name, const char *text)
{
  free(unit_write(f->dir, name, text, strlen(text)));
}

/* Loads with the fixture's confdir; returns the load result, e filled. */
static int load(struct fx *f, struct sp_config *c, const char *domain, const char *file,
                const char *const *sets, size_t nsets, struct sp_err *e)
{
  char *path = NULL;
  if (file)
    assert_true(asprintf(&path, "%s/%s", f->dir, file) > 0);
  struct sp_config_args a = { .domain = domain, .config_file = path, .sets = sets,
                              .nsets = nsets, .confdir = f->dir };
  int r = sp_config_load(c, &a, e);
  free(path);
  return r;
}

static void defaults_without_files(void **state)
{
  struct sp_config c;
  struct sp_err e = { 0 };
  assert_int_equal(load(*state, &c, "vm1", NULL, NULL, 0, &e), 0);
  assert_string_equal(sp_config_str(&c, SP_KEY_TARGET), "/var/lib/stillpoint/backups");
  assert_int_equal(sp_config_int(&c, SP_KEY_PAUSE_MAX_MS), 2000);
  assert_true(sp_config_is(&c, SP_KEY_FREEZE, "auto"));
  /* An int key's word: sp_config_int reads 0, sp_config_is names it. */
  assert_true(sp_config_is(&c, SP_KEY_PARALLEL, "auto"));
  assert_int_equal(sp_config_int(&c, SP_KEY_PARALLEL), 0);
  assert_true(sp_config_bool(&c, SP_KEY_SNAPSHOT_ON_STOP));
  assert_string_equal(c.source[SP_KEY_TARGET], "built-in default");
  sp_config_free(&c);
}

static void precedence(void **state)
{
  struct fx *f = *state;
  put(f, "stillpoint.conf", "[defaults]\ntarget = /g\nkeep = 3\nparallel = 2\n"
                            "[hook]\nkeep_snapshots = 9\n");
  put(f, "vm.d/vm1.conf", "# plain overrides, no section needed\nkeep = 4\nparallel = 3\n");
  put(f, "extra.conf", "[defaults]\nparallel = 4\nlevel = full\n");
  const char *sets[] = { "level=inc", "hook.recover_tpm=off" };
  struct sp_config c;
  struct sp_err e = { 0 };
  assert_int_equal(load(f, &c, "vm1", "extra.conf", sets, 2, &e), 0);
  assert_string_equal(sp_config_str(&c, SP_KEY_TARGET), "/g");
  assert_int_equal(sp_config_int(&c, SP_KEY_KEEP), 4);
  assert_int_equal(sp_config_int(&c, SP_KEY_PARALLEL), 4);
  assert_string_equal(sp_config_str(&c, SP_KEY_LEVEL), "inc");
  assert_string_equal(sp_config_str(&c, SP_KEY_RECOVER_TPM), "off");
  assert_int_equal(sp_config_int(&c, SP_KEY_KEEP_SNAPSHOTS), 9);
  assert_non_null(strstr(c.source[SP_KEY_TARGET], "stillpoint.conf:2"));
  assert_non_null(strstr(c.source[SP_KEY_KEEP], "vm.d/vm1.conf:2"));
  assert_string_equal(c.source[SP_KEY_LEVEL], "--set");
  sp_config_free(&c);

  /* Another VM does not see vm1's file. */
  assert_int_equal(load(f, &c, "vm2", NULL, NULL, 0, &e), 0);
  assert_int_equal(sp_config_int(&c, SP_KEY_KEEP), 3);
  sp_config_free(&c);
}

/* Each bad file must fail with exit 2 and a message naming file, line
 * and key (or what is wrong with the line). */
static void expect_bad(struct fx *f, const char *text, size_t len, const char *want1,
                       const char *want2)
{
  free(unit_write(f->dir, "stillpoint.conf", text, len));
  struct sp_config c;
  struct sp_err e = { 0 };
  assert_int_equal(load(f, &c, NULL, NULL, NULL, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  assert_non_null(strstr(e.msg, "stillpoint.conf"));
  if (!strstr(e.msg, want1) || (want2 && !strstr(e.msg, want2)))
    fail_msg("message '%s' lacks '%s' / '%s'", e.msg, want1, want2 ? want2 : "");
  sp_config_free(&c);
}

#define BAD(f, text, w1, w2) expect_bad(f, text, sizeof text - 1, w1, w2)

static void bad_files(void **state)
{
  struct fx *f = *state;
  BAD(f, "[defaults]\ntarget = /x\nbogus = 1\n", ":3:", "unknown key 'bogus'");
  BAD(f, "[nosuch]\nkeep = 1\n", ":1:", "unknown section [nosuch]");
  BAD(f, "[defaults]\nfreeze = sometimes\n", ":2:", "'freeze'");
  BAD(f, "[defaults]\nfreeze = sometimes\n", "auto|required|off", NULL);
  BAD(f, "[defaults]\nkeep = 1\nkeep = 2\n", ":3:", "set twice");
  BAD(f, "[defaults]\ncopier =\n", ":2:", "empty value");
  BAD(f, "[defaults]\npause_max_ms = 12abc\n", ":2:", "pause_max_ms");
  BAD(f, "[defaults]\npause_max_ms = 10\n", ":2:", "from 50");
  BAD(f, "[defaults]\ntarget = relative/dir\n", ":2:", "absolute path");
  BAD(f, "[defaults]\nrecover_tpm = auto\n", ":2:", "belongs in section [hook]");
  BAD(f, "[defaults]\njust some words\n", ":2:", "not an INI line");
  BAD(f, "[defaults]\nenabled = maybe\n", ":2:", "yes or no");
  BAD(f, "[defaults]\nkeep = 1\0garbage\n", "binary data", NULL);
}

static void long_line(void **state)
{
  struct fx *f = *state;
  size_t n = 65536;
  char *text = malloc(n + 32);
  strcpy(text, "[defaults]\ncopier = ");
  size_t off = strlen(text);
  memset(text + off, 'x', n);
  strcpy(text + off + n, "\n");
  expect_bad(f, text, strlen(text), ":2:", "line longer than");
  free(text);
}

static void binary_garbage(void **state)
{
  struct fx *f = *state;
  unsigned char junk[4096];
  uint32_t x = 0x12345678;
  for (size_t i = 0; i < sizeof junk; i++) {
    x = x * 1103515245 + 12345;
    junk[i] = (unsigned char)(x >> 16);
  }
  junk[100] = 0; /* make sure of a NUL */
  free(unit_write(f->dir, "stillpoint.conf", junk, sizeof junk));
  struct sp_config c;
  struct sp_err e = { 0 };
  assert_int_equal(load(f, &c, NULL, NULL, NULL, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  assert_non_null(strstr(e.msg, "stillpoint.conf"));
  sp_config_free(&c);
}

static void missing_and_unreadable(void **state)
{
  struct fx *f = *state;
  struct sp_config c;
  struct sp_err e = { 0 };
  /* A missing --config file is an error; the optional files are not. */
  assert_int_equal(load(f, &c, "vm1", "nope.conf", NULL, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  assert_non_null(strstr(e.msg, "nope.conf"));
  sp_config_free(&c);

  /* A directory where the file should be cannot be read. */
  char *p = NULL;
  assert_true(asprintf(&p, "%s/stillpoint.conf", f->dir) > 0);
  unlink(p);
  assert_int_equal(mkdir(p, 0700), 0);
  sp_err_clear(&e);
  assert_int_equal(load(f, &c, NULL, NULL, NULL, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  assert_non_null(strstr(e.msg, "stillpoint.conf"));
  rmdir(p);
  free(p);
  sp_config_free(&c);
}

static void bad_sets(void **state)
{
  struct sp_config c;
  struct sp_err e = { 0 };
  const char *s1[] = { "nokey" };
  assert_int_equal(load(*state, &c, NULL, NULL, s1, 1, &e), -1);
  assert_non_null(strstr(e.msg, "key=value"));
  sp_config_free(&c);
  const char *s2[] = { "bogus=1" };
  assert_int_equal(load(*state, &c, NULL, NULL, s2, 1, &e), -1);
  assert_non_null(strstr(e.msg, "unknown key 'bogus'"));
  sp_config_free(&c);
  const char *s3[] = { "parallel=0" };
  assert_int_equal(load(*state, &c, NULL, NULL, s3, 1, &e), -1);
  assert_non_null(strstr(e.msg, "--set: key 'parallel'"));
  assert_non_null(strstr(e.msg, "from 1 to 64 or auto"));
  sp_config_free(&c);
  /* A word is one of the key's, whole: no other word, no number after it. */
  const char *s4[] = { "parallel=automatic" };
  assert_int_equal(load(*state, &c, NULL, NULL, s4, 1, &e), -1);
  assert_non_null(strstr(e.msg, "'automatic' is not a number from 1 to 64 or auto"));
  sp_config_free(&c);
  const char *s5[] = { "freeze_timeout_s=auto" };
  assert_int_equal(load(*state, &c, NULL, NULL, s5, 1, &e), -1);
  assert_non_null(strstr(e.msg, "is not a number from 1 to 60"));
  assert_null(strstr(e.msg, " or "));
  sp_config_free(&c);
  assert_int_equal(load(*state, &c, "../etc/passwd", NULL, NULL, 0, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  sp_config_free(&c);
}

static void port_range(void **state)
{
  struct sp_config c;
  struct sp_err e = { 0 };
  const char *ok[] = { "nbd_port_min=20000", "nbd_port_max=20000" };
  assert_int_equal(load(*state, &c, NULL, NULL, ok, 2, &e), 0);
  assert_int_equal(sp_config_int(&c, SP_KEY_NBD_PORT_MIN), 20000);
  sp_config_free(&c);
  put(*state, "stillpoint.conf", "[defaults]\nnbd_port_max = 10900\n");
  const char *bad[] = { "nbd_port_min=10901" };
  assert_int_equal(load(*state, &c, NULL, NULL, bad, 1, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  assert_non_null(strstr(e.msg, "nbd_port_min = 10901 (--set) is above nbd_port_max = 10900"));
  assert_non_null(strstr(e.msg, "stillpoint.conf:2"));
  sp_config_free(&c);
  const char *zero[] = { "nbd_port_min=0" };
  assert_int_equal(load(*state, &c, NULL, NULL, zero, 1, &e), -1);
  assert_non_null(strstr(e.msg, "key 'nbd_port_min'"));
  sp_config_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(defaults_without_files, setup, teardown),
    cmocka_unit_test_setup_teardown(precedence, setup, teardown),
    cmocka_unit_test_setup_teardown(bad_files, setup, teardown),
    cmocka_unit_test_setup_teardown(long_line, setup, teardown),
    cmocka_unit_test_setup_teardown(binary_garbage, setup, teardown),
    cmocka_unit_test_setup_teardown(missing_and_unreadable, setup, teardown),
    cmocka_unit_test_setup_teardown(bad_sets, setup, teardown),
    cmocka_unit_test_setup_teardown(port_range, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
