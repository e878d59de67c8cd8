/* RBD destinations as the copier contract names them (ceph/rbd_spec.c):
 * rbd:POOL[/NAMESPACE]/IMAGE@SNAPSHOT, every part a safe name. */
#include "unit.h"

#include "rbd_spec.h"

static void parses_the_forms(void **state)
{
  struct sp_rbd_spec s;
  struct sp_err e = { 0 };
  assert_int_equal(sp_rbd_spec_parse("rbd:pool/img@20261126T063000Z-full", &s, &e), 0);
  assert_string_equal(s.pool, "pool");
  assert_null(s.ns);
  assert_string_equal(s.image, "img");
  assert_string_equal(s.snap, "20261126T063000Z-full");
  char *back = sp_rbd_spec_format(&s, "p2");
  assert_string_equal(back, "rbd:pool/img@p2");
  free(back);
  sp_rbd_spec_free(&s);

  const char *img = "stillpoint.2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10.vda.20261126T063000Z-full";
  char *whole = NULL;
  assert_true(asprintf(&whole, "rbd:backups/site_a/%s@20261126T070000Z-inc", img) > 0);
  assert_int_equal(sp_rbd_spec_parse(whole, &s, &e), 0);
  assert_string_equal(s.pool, "backups");
  assert_string_equal(s.ns, "site_a");
  assert_string_equal(s.image, img);
  back = sp_rbd_spec_format(&s, s.snap);
  assert_string_equal(back, whole);
  free(back);
  back = sp_rbd_spec_format(&s, NULL);
  assert_non_null(strstr(back, img));
  assert_null(strchr(back, '@'));
  free(back);
  struct sp_rbd_spec t;
  assert_int_equal(sp_rbd_spec_parse("rbd:backups/site_a/x@y", &t, &e), 0);
  assert_false(sp_rbd_spec_same_image(&s, &t));
  sp_rbd_spec_free(&t);
  assert_int_equal(sp_rbd_spec_parse(whole, &t, &e), 0);
  assert_true(sp_rbd_spec_same_image(&s, &t));
  sp_rbd_spec_free(&t);
  /* The same image name without the namespace is another image. */
  char *no_ns = NULL;
  assert_true(asprintf(&no_ns, "rbd:backups/%s@p", img) > 0);
  assert_int_equal(sp_rbd_spec_parse(no_ns, &t, &e), 0);
  assert_false(sp_rbd_spec_same_image(&s, &t));
  sp_rbd_spec_free(&t);
  free(no_ns);
  sp_rbd_spec_free(&s);
  free(whole);

  /* Without a snapshot: parsed, snap NULL (the copier then refuses). */
  assert_int_equal(sp_rbd_spec_parse("rbd:p/i", &s, &e), 0);
  assert_null(s.snap);
  sp_rbd_spec_free(&s);
  assert_true(sp_rbd_spec_is("rbd:x"));
  assert_false(sp_rbd_spec_is("/b/rbd:x"));
  assert_false(sp_rbd_spec_is(NULL));
}

static void refuses_bad_forms(void **state)
{
  const char *bad[] = {
    "pool/img@s",           /* no rbd: */
    "rbd:",                 /* nothing */
    "rbd:pool",             /* no image */
    "rbd:pool/",            /* empty image */
    "rbd:/img@s",           /* empty pool */
    "rbd:pool//img@s",      /* empty namespace */
    "rbd:a/b/c/d@s",        /* three slashes */
    "rbd:pool/img@",        /* empty snapshot */
    "rbd:pool/img@a@b",     /* two @ */
    "rbd:pool/img@a/b",     /* / in the snapshot */
    "rbd:pool/../img@s",    /* .. as namespace */
    "rbd:pool/./img@s",
    "rbd:pool/-img@s",      /* would read as an option */
    "rbd:pool/img:id=admin@s", /* QEMU's option separator */
    "rbd:pool/im g@s",
    "rbd:pool/im\ng@s",
    "rbd:pool/img@s\x01",
    "rbd:p\xc3\xa4ol/img@s", /* non-ASCII */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sp_rbd_spec s = { 0 };
    struct sp_err e = { 0 };
    assert_int_equal(sp_rbd_spec_parse(bad[i], &s, &e), -1);
    assert_int_equal(e.code, SP_EXIT_USAGE);
    assert_null(s.pool);
    assert_null(s.image);
  }
  /* Length: SP_RBD_NAME_MAX is the limit. */
  char name[SP_RBD_NAME_MAX + 2];
  memset(name, 'a', sizeof name);
  assert_true(sp_rbd_name_ok(name, SP_RBD_NAME_MAX));
  assert_false(sp_rbd_name_ok(name, SP_RBD_NAME_MAX + 1));
  assert_false(sp_rbd_name_ok(name, 0));
}

/* Every byte string either parses into names that survive a format and
 * parse round trip, or is refused without a partial result. */
static void fuzz_mutations(void **state)
{
  const char seed[] = "rbd:pool/ns/image.vda-1@20261126T063000Z-full";
  const char alphabet[] = "/@:.-_aZ09 \n\x01\xff";
  unsigned r = 12345;
  for (int i = 0; i < 20000; i++) {
    char buf[sizeof seed + 8];
    memcpy(buf, seed, sizeof seed);
    size_t len = sizeof seed - 1;
    for (int k = 0; k < 1 + i % 4; k++) {
      r = r * 1103515245u + 12345u;
      size_t at = (r >> 8) % len;
      buf[at] = alphabet[(r >> 20) % (sizeof alphabet - 1)];
    }
    struct sp_rbd_spec s = { 0 };
    struct sp_err e = { 0 };
    if (sp_rbd_spec_parse(buf, &s, &e) == 0) {
      char *back = sp_rbd_spec_format(&s, s.snap);
      assert_string_equal(back, buf);
      free(back);
      sp_rbd_spec_free(&s);
    } else {
      assert_null(s.pool);
      assert_true(strlen(e.msg) > 0);
    }
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(parses_the_forms),
    cmocka_unit_test(refuses_bad_forms),
    cmocka_unit_test(fuzz_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
