/* Names and records of points in Ceph (ceph/point_names.c): built only
 * from checked parts, read back strictly. */
#include "unit.h"

#include "point_names.h"

#define UUID "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10"
#define ID "20261126T063000Z-full"

static void object_and_image_names(void **state)
{
  char *s = sp_rados_vm_object(UUID);
  assert_string_equal(s, "stillpoint.vm." UUID);
  free(s);
  s = sp_rados_point_object(UUID, ID, "tpm/tpm2/tpm2-00.permall");
  assert_string_equal(s, "stillpoint.point." UUID "." ID "/tpm/tpm2/tpm2-00.permall");
  free(s);
  s = sp_rados_image_name(UUID, "vda", ID);
  assert_string_equal(s, "stillpoint." UUID ".vda." ID);
  free(s);
  /* Refused: a UUID not of its form, a bad id, a path leaving the point,
   * a target that is not a plain RBD name (or holds the separator '.'). */
  assert_null(sp_rados_vm_object("2B1C7A5E-6F3D-4C4B-9A57-0E3D2F1C9A10"));
  assert_null(sp_rados_vm_object("../x"));
  assert_null(sp_rados_point_object(UUID, "latest", "manifest.json"));
  assert_null(sp_rados_point_object(UUID, ID, "../" ID "/manifest.json"));
  assert_null(sp_rados_point_object(UUID, ID, "/etc/passwd"));
  assert_null(sp_rados_point_object(UUID, ID, "@img"));
  assert_null(sp_rados_point_object(UUID, ID, ""));
  assert_null(sp_rados_image_name(UUID, "vd/a", ID));
  assert_null(sp_rados_image_name(UUID, "vd.a", ID));
  assert_null(sp_rados_image_name(UUID, "-vda", ID));
  assert_null(sp_rados_image_name(UUID, "vda", "x"));
}

static void keys_round_trip(void **state)
{
  struct sp_rados_key k;
  char *key = sp_rados_point_key(ID);
  assert_string_equal(key, "point." ID);
  assert_true(sp_rados_key_parse(key, &k));
  assert_int_equal(k.kind, 'p');
  assert_string_equal(k.id, ID);
  free(key);
  const char *items[] = { "manifest.json", "nvram/vm_VARS.fd", "@stillpoint." UUID ".vda." ID,
                          "@stillpoint." UUID ".vda." ID "@" ID };
  for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
    key = sp_rados_pending_key(ID, items[i]);
    assert_non_null(key);
    assert_true(sp_rados_key_parse(key, &k));
    assert_int_equal(k.kind, 'i');
    assert_string_equal(k.id, ID);
    assert_string_equal(k.item, items[i]);
    free(key);
  }
  const char *bad_items[] = { "", "../x", "/x", "a//b", "@", "@a/b", "@img@", "@img@x",
                              "@img@" ID "@" ID, "@-img" };
  for (size_t i = 0; i < sizeof bad_items / sizeof bad_items[0]; i++)
    assert_null(sp_rados_pending_key(ID, bad_items[i]));
  assert_null(sp_rados_pending_key("x", "manifest.json"));
  const char *bad_keys[] = { "point.", "point.x", "point." ID "x", "pending." ID,
                             "pending." ID ".", "pending.x.manifest.json",
                             "pending." ID "./etc", "other", "" };
  for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
    assert_false(sp_rados_key_parse(bad_keys[i], &k));
}

static void commit_records(void **state)
{
  struct sp_commit_record r = { .size = 1234 };
  memset(r.sha256, 'a', SP_SHA256_HEX_LEN);
  char buf[SP_RADOS_RECORD_MAX];
  int n = sp_commit_record_format(&r, buf, sizeof buf);
  assert_true(n > 0);
  assert_string_equal(buf, "stillpoint-point 1 sha256 "
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
                           "size 1234");
  struct sp_commit_record back;
  struct sp_err e = { 0 };
  assert_int_equal(sp_commit_record_parse(buf, (size_t)n, &back, &e), 0);
  assert_string_equal(back.sha256, r.sha256);
  assert_int_equal(back.size, 1234);
  char small[16];
  assert_int_equal(sp_commit_record_format(&r, small, sizeof small), -1);
  const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  char bad[8][200];
  snprintf(bad[0], 200, "stillpoint-point 2 sha256 %s size 1", hex);
  snprintf(bad[1], 200, "stillpoint-point 1 sha256 %.63s size 1", hex);
  snprintf(bad[2], 200, "stillpoint-point 1 sha256 %.63sA size 1", hex);
  snprintf(bad[3], 200, "stillpoint-point 1 sha256 %s size -1", hex);
  snprintf(bad[4], 200, "stillpoint-point 1 sha256 %s size 01", hex);
  snprintf(bad[5], 200, "stillpoint-point 1 sha256 %s size 1 ", hex);
  snprintf(bad[6], 200, "stillpoint-point 1 sha256 %s size 99999999999999999999999", hex);
  snprintf(bad[7], 200, "stillpoint-point 1 sha256 %s size", hex);
  for (int i = 0; i < 8; i++) {
    memset(&e, 0, sizeof e);
    assert_int_equal(sp_commit_record_parse(bad[i], strlen(bad[i]), &back, &e), -1);
    assert_true(strlen(e.msg) > 0);
  }
  /* A NUL inside, and a record longer than any we write. */
  char nul[] = "stillpoint-point 1 sha256 \0";
  assert_int_equal(sp_commit_record_parse(nul, sizeof nul - 1, &back, &e), -1);
  char big[SP_RADOS_RECORD_MAX + 2];
  memset(big, 'x', sizeof big);
  assert_int_equal(sp_commit_record_parse(big, sizeof big, &back, &e), -1);
  /* Every byte flip of a good record is refused or parses to a record
   * that formats back to exactly what was read. */
  for (int i = 0; i < n; i++)
    for (int v = 0; v < 256; v += 7) {
      char m[SP_RADOS_RECORD_MAX];
      memcpy(m, buf, (size_t)n);
      m[i] = (char)v;
      if (sp_commit_record_parse(m, (size_t)n, &back, &e) == 0) {
        char again[SP_RADOS_RECORD_MAX];
        assert_int_equal(sp_commit_record_format(&back, again, sizeof again), n);
        assert_memory_equal(again, m, (size_t)n);
      }
    }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(object_and_image_names),
    cmocka_unit_test(keys_round_trip),
    cmocka_unit_test(commit_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
