/* The copier contract's environment and the flags that override it
 * (copier/options.c). */
#include "unit.h"

#include "options.h"

/* A fake environment: NAME=VALUE strings. */
static const char *const *fake_env;

static const char *lookup(const char *name)
{
  size_t n = strlen(name);
  for (const char *const *p = fake_env; p && *p; p++)
    if (!strncmp(*p, name, n) && (*p)[n] == '=')
      return *p + n + 1;
  return NULL;
}

static int parse(const char *const *env, const char *const *args, struct copy_opts *o,
                 struct sp_err *e)
{
  char *argv[32] = { "stillpoint-copy" };
  int argc = 1;
  for (; args && args[argc - 1]; argc++)
    argv[argc] = (char *)args[argc - 1];
  fake_env = env;
  memset(e, 0, sizeof *e);
  return copy_opts_parse(argc, argv, lookup, o, e);
}

static void contract_environment(void **state)
{
  const char *env[] = {
    "STILLPOINT_NBD_URI=nbd+unix:///vda?socket=/run/x.sock",
    "STILLPOINT_DISK=vda",
    "STILLPOINT_DISK_SIZE=67108864",
    "STILLPOINT_LEVEL=inc",
    "STILLPOINT_BITMAP=qemu:dirty-bitmap:backup-vda",
    "STILLPOINT_OUTPUT=/b/vm/p.partial/disks/vda.qcow2",
    "STILLPOINT_PARENT_OUTPUT=/b/vm/q/disks/vda.qcow2",
    "STILLPOINT_POINT_DIR=/b/vm/p.partial",
    "STILLPOINT_DOMAIN=vm",
    NULL,
  };
  struct copy_opts o;
  struct sp_err e;
  assert_int_equal(parse(env, NULL, &o, &e), 0);
  assert_string_equal(o.uri, "nbd+unix:///vda?socket=/run/x.sock");
  assert_string_equal(o.disk, "vda");
  assert_int_equal(o.size, 67108864);
  assert_int_equal(o.level, SP_LEVEL_INC);
  assert_string_equal(o.bitmap, "qemu:dirty-bitmap:backup-vda");
  assert_string_equal(o.output, "/b/vm/p.partial/disks/vda.qcow2");
  assert_string_equal(o.parent, "/b/vm/q/disks/vda.qcow2");
  assert_false(o.compress);
  assert_int_equal(o.progress, SP_PROGRESS_AUTO);
  assert_int_equal(o.request_size, 1 << 20);
  assert_int_equal(o.requests, 32);
  assert_int_equal(o.connections, 2);
  copy_opts_free(&o);
}

static void flags_override_environment(void **state)
{
  const char *env[] = { "STILLPOINT_NBD_URI=nbd://env", "STILLPOINT_OUTPUT=/env.qcow2",
                        "STILLPOINT_LEVEL=full", NULL };
  const char *args[] = { "--uri", "nbd://flag", "--output=/o/disk1.qcow2", "--level", "diff",
                         "--bitmap", "b0", "--parent", "/p.qcow2", "--compress",
                         "--progress=lines", "--progress-interval", "0.5",
                         "--request-size", "2M", "--requests", "8", "--connections", "1",
                         NULL };
  struct copy_opts o;
  struct sp_err e;
  assert_int_equal(parse(env, args, &o, &e), 0);
  assert_string_equal(o.uri, "nbd://flag");
  assert_string_equal(o.output, "/o/disk1.qcow2");
  assert_int_equal(o.level, SP_LEVEL_DIFF);
  /* A bare bitmap name is qemu's context for it. */
  assert_string_equal(o.bitmap, "qemu:dirty-bitmap:b0");
  /* No disk given: the output's name stands in. */
  assert_string_equal(o.disk, "disk1");
  assert_true(o.compress);
  assert_int_equal(o.progress, SP_PROGRESS_LINES);
  assert_true(o.progress_interval > 0.49 && o.progress_interval < 0.51);
  assert_int_equal(o.request_size, 2 << 20);
  assert_int_equal(o.requests, 8);
  assert_int_equal(o.connections, 1);
  copy_opts_free(&o);
}

static void empty_variables_are_unset(void **state)
{
  /* The coordinator passes STILLPOINT_BITMAP= and STILLPOINT_PARENT_OUTPUT=
   * empty for a full: that is not a bitmap named "". */
  const char *env[] = { "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=/o.qcow2",
                        "STILLPOINT_LEVEL=full", "STILLPOINT_BITMAP=",
                        "STILLPOINT_PARENT_OUTPUT=", "STILLPOINT_DISK_SIZE=", NULL };
  struct copy_opts o;
  struct sp_err e;
  assert_int_equal(parse(env, NULL, &o, &e), 0);
  assert_null(o.bitmap);
  assert_null(o.parent);
  assert_int_equal(o.size, 0);
  copy_opts_free(&o);
}

/* An rbd: output's Ceph client: the contract's STILLPOINT_CEPH_*, and
 * the flags over them; a timeout out of 5..3600 is a usage error. */
static void ceph_client_environment(void **state)
{
  const char *env[] = {
    "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=rbd:pool/ns/img@p1",
    "STILLPOINT_CEPH_CONF=/etc/ceph/site.conf", "STILLPOINT_CEPH_USER=stillpoint",
    "STILLPOINT_CEPH_KEYRING=/etc/ceph/k", "STILLPOINT_CEPH_TIMEOUT=30", NULL,
  };
  struct copy_opts o;
  struct sp_err e;
  assert_int_equal(parse(env, NULL, &o, &e), 0);
  assert_string_equal(o.output, "rbd:pool/ns/img@p1");
  assert_string_equal(o.ceph_conf, "/etc/ceph/site.conf");
  assert_string_equal(o.ceph_user, "stillpoint");
  assert_string_equal(o.ceph_keyring, "/etc/ceph/k");
  assert_int_equal(o.ceph_timeout, 30);
  copy_opts_free(&o);
  const char *args[] = { "--ceph-user", "other", "--ceph-timeout", "3600", NULL };
  assert_int_equal(parse(env, args, &o, &e), 0);
  assert_string_equal(o.ceph_user, "other");
  assert_int_equal(o.ceph_timeout, 3600);
  copy_opts_free(&o);
  const char *unset[] = { "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=rbd:p/i@s", NULL };
  assert_int_equal(parse(unset, NULL, &o, &e), 0);
  assert_null(o.ceph_conf);
  assert_null(o.ceph_user);
  assert_int_equal(o.ceph_timeout, 0);
  copy_opts_free(&o);
  const char *const *bad[] = {
    (const char *[]){ "--ceph-timeout", "4", NULL },
    (const char *[]){ "--ceph-timeout", "3601", NULL },
    (const char *[]){ "--ceph-timeout", "1m", NULL },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(parse(unset, bad[i], &o, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
    copy_opts_free(&o);
  }
  const char *bad_env[] = { "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=rbd:p/i@s",
                            "STILLPOINT_CEPH_TIMEOUT=0", NULL };
  assert_int_equal(parse(bad_env, NULL, &o, &e), -1);
  assert_non_null(strstr(e.msg, "STILLPOINT_CEPH_TIMEOUT"));
  copy_opts_free(&o);
}

static void usage_errors(void **state)
{
  const char *base[] = { "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=/o.qcow2", NULL };
  const char *const *bad_args[] = {
    (const char *[]){ "--level", "weekly", NULL },
    (const char *[]){ "--bitmap", "b0", NULL },              /* bitmap for a full */
    (const char *[]){ "--level", "inc", NULL },              /* inc without bitmap */
    (const char *[]){ "--level", "inc", "--bitmap", "b", NULL }, /* inc without parent */
    (const char *[]){ "--request-size", "100000", NULL },    /* not whole clusters */
    (const char *[]){ "--request-size", "64M", NULL },       /* above the NBD limit */
    (const char *[]){ "--requests", "0", NULL },
    (const char *[]){ "--connections", "99", NULL },
    (const char *[]){ "--progress=sometimes", NULL },
    (const char *[]){ "--progress-interval", "-1", NULL },
    (const char *[]){ "--size", "12x", NULL },
    (const char *[]){ "--frobnicate", NULL },
    (const char *[]){ "--uri", NULL },
    (const char *[]){ "extra-argument", NULL },
  };
  for (size_t i = 0; i < sizeof bad_args / sizeof bad_args[0]; i++) {
    struct copy_opts o;
    struct sp_err e;
    assert_int_equal(parse(base, bad_args[i], &o, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
    assert_true(strlen(e.msg) > 0);
    copy_opts_free(&o);
  }
  struct copy_opts o;
  struct sp_err e;
  const char *no_uri[] = { "STILLPOINT_OUTPUT=/o.qcow2", NULL };
  assert_int_equal(parse(no_uri, NULL, &o, &e), -1);
  assert_non_null(strstr(e.msg, "STILLPOINT_NBD_URI"));
  copy_opts_free(&o);
  const char *bad_level[] = { "STILLPOINT_NBD_URI=nbd://x", "STILLPOINT_OUTPUT=/o",
                              "STILLPOINT_LEVEL=incremental", NULL };
  assert_int_equal(parse(bad_level, NULL, &o, &e), -1);
  assert_int_equal(e.code, SP_EXIT_USAGE);
  copy_opts_free(&o);
}

static void help_needs_nothing_else(void **state)
{
  struct copy_opts o;
  struct sp_err e;
  const char *args[] = { "--help", NULL };
  assert_int_equal(parse(NULL, args, &o, &e), 0);
  assert_true(o.help);
  copy_opts_free(&o);
}

static void sizes(void **state)
{
  uint64_t v;
  assert_int_equal(copy_parse_size("65536", &v), 0);
  assert_int_equal(v, 65536);
  assert_int_equal(copy_parse_size("64K", &v), 0);
  assert_int_equal(v, 65536);
  assert_int_equal(copy_parse_size("1M", &v), 0);
  assert_int_equal(v, 1 << 20);
  assert_int_equal(copy_parse_size("4G", &v), 0);
  assert_int_equal(v, 4ull << 30);
  assert_int_equal(copy_parse_size("", &v), -1);
  assert_int_equal(copy_parse_size("-1", &v), -1);
  assert_int_equal(copy_parse_size("1T", &v), -1);
  assert_int_equal(copy_parse_size("99999999999999999999", &v), -1);
  assert_int_equal(copy_parse_size("17179869184G", &v), -1); /* overflows 64 bits */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(contract_environment),
    cmocka_unit_test(flags_override_environment),
    cmocka_unit_test(empty_variables_are_unset),
    cmocka_unit_test(usage_errors),
    cmocka_unit_test(ceph_client_environment),
    cmocka_unit_test(help_needs_nothing_else),
    cmocka_unit_test(sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
