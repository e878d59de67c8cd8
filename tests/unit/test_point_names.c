/* Names and records of points in Ceph (ceph/point_names.c): built only
 * from checked parts, read back strictly. */
#include "unit.h"

#include <errno.h>

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

/* The lock's cookie: ours round trip; anything else is no holder we
 * could judge dead. */
static void holder_cookies(void **state)
{
  (void)state;
  char buf[256], host[64];
  long pid = 0;
  assert_true(sp_rados_holder_format(buf, sizeof buf, "hv1", 4242, "backup",
                                     "2026-12-07T06:29:43.349Z"));
  assert_string_equal(buf, "hv1 pid 4242 backup since 2026-12-07T06:29:43.349Z");
  assert_true(sp_rados_holder_parse(buf, host, sizeof host, &pid));
  assert_string_equal(host, "hv1");
  assert_int_equal(pid, 4242);
  assert_false(sp_rados_holder_format(buf, sizeof buf, "h v", 1, "backup", "t"));
  assert_false(sp_rados_holder_format(buf, 10, "hv1", 1, "backup", "t"));
  assert_false(sp_rados_holder_format(buf, sizeof buf, "hv1", 0, "backup", "t"));
  const char *bad[] = { "", "hv1", "hv1 pid", "hv1 pid 0 backup since t", "hv1 pid 01 backup since t",
                        "hv1 pid -1 backup since t", "hv1 pid 12x backup since t",
                        "hv1 pid 12 backup", "hv1 pid 12 backup since ", " pid 12 b since t",
                        "hv1 pid 12345678901 backup since t", "hv1  pid 12 backup since t",
                        "hv1 pid 12 backup since t u" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(sp_rados_holder_parse(bad[i], host, sizeof host, &pid));
  assert_false(sp_rados_holder_parse("averyveryverylonghostname pid 1 b since t", host, 8, &pid));
}

/* A lost answer is read back; an answer the OSD gave after checking the
 * operation is final (one write operation lands whole or not at all). */
static void commit_outcomes(void **state)
{
  (void)state;
  assert_int_equal(sp_commit_outcome(0), SP_COMMIT_LANDED);
  const int definite[] = { -ECANCELED, -ENODATA, -EPERM, -EACCES, -EINVAL, -ENOSPC, -EDQUOT,
                           -EROFS, -EOPNOTSUPP, -ENOMEM };
  for (size_t i = 0; i < sizeof definite / sizeof *definite; i++)
    assert_int_equal(sp_commit_outcome(definite[i]), SP_COMMIT_NOT_LANDED);
  const int lost[] = { -ETIMEDOUT, -ENOTCONN, -ECONNRESET, -ESHUTDOWN, -EIO, -EAGAIN, -EINTR,
                       -ENOENT };
  for (size_t i = 0; i < sizeof lost / sizeof *lost; i++)
    assert_int_equal(sp_commit_outcome(lost[i]), SP_COMMIT_UNKNOWN);
}

static void commit_read_backs(void **state)
{
  (void)state;
  struct sp_commit_record ours = { .size = 4096 };
  memset(ours.sha256, 'a', SP_SHA256_HEX_LEN);
  char val[SP_RADOS_RECORD_MAX];
  int n = sp_commit_record_format(&ours, val, sizeof val);
  assert_true(n > 0);
  assert_int_equal(sp_commit_readback(0, val, (size_t)n, &ours), SP_COMMIT_LANDED);
  /* Absent (no index, no key): it did not land. */
  assert_int_equal(sp_commit_readback(-ENOENT, NULL, 0, &ours), SP_COMMIT_NOT_LANDED);
  /* Another record under our id is not our commit, nor is a prefix of ours. */
  struct sp_commit_record other = ours;
  other.size = 4097;
  char oval[SP_RADOS_RECORD_MAX];
  int on = sp_commit_record_format(&other, oval, sizeof oval);
  assert_int_equal(sp_commit_readback(0, oval, (size_t)on, &ours), SP_COMMIT_NOT_LANDED);
  assert_int_equal(sp_commit_readback(0, val, (size_t)n - 1, &ours), SP_COMMIT_NOT_LANDED);
  assert_int_equal(sp_commit_readback(0, NULL, 0, &ours), SP_COMMIT_NOT_LANDED);
  /* A read that fails leaves it unknown. */
  assert_int_equal(sp_commit_readback(-ETIMEDOUT, NULL, 0, &ours), SP_COMMIT_UNKNOWN);
  assert_int_equal(sp_commit_readback(-ENOTCONN, val, (size_t)n, &ours), SP_COMMIT_UNKNOWN);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(object_and_image_names),
    cmocka_unit_test(keys_round_trip),
    cmocka_unit_test(commit_records),
    cmocka_unit_test(holder_cookies),
    cmocka_unit_test(commit_outcomes),
    cmocka_unit_test(commit_read_backs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
