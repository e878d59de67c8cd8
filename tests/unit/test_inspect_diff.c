/* inspect's differences (inspect_diff.c): each difference once, from the
 * subject's side, on NVRAM stores built from OVMF's template and on TPM
 * reports made here; counters of use are never differences. */
#include "unit.h"

#include "fsutil.h"
#include "inspect_diff.h"
#include "nvram_info.h"
#include "tpm_info.h"

#define MS_VARS "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
#define EMPTY_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"

static void load(const char *path, struct nvram_info *ni)
{
  char *buf = NULL;
  size_t len;
  struct sp_err e = { 0 };
  if (sp_read_file(path, 8 << 20, &buf, &len, &e) < 0 ||
      nvram_info_parse((uint8_t *)buf, len, ni, &e) < 0)
    fail_msg("%s", e.msg);
}

/* Changes the first byte of a live variable's data in place. */
static void poke(struct nvram_info *ni, const char *name)
{
  for (size_t i = 0; i < ni->store.n; i++)
    if (ni->store.vars[i].live && strcmp(ni->store.vars[i].name, name) == 0) {
      ni->image[ni->store.vars[i].data - ni->image] ^= 0x05;
      return;
    }
  fail_msg("no %s", name);
}

static const struct inspect_change *find(const struct inspect_diff *d, const char *item)
{
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->v[i].item, item) == 0)
      return &d->v[i];
  return NULL;
}

static void same_store_no_difference(void **state)
{
  struct nvram_info a, b;
  load(MS_VARS, &a);
  load(MS_VARS, &b);
  struct inspect_diff d = { 0 };
  struct sp_err e = { 0 };
  assert_int_equal(inspect_diff_nvram(&a, &b, &d, &e), 0);
  assert_int_equal(d.n, 0);
  assert_int_equal(inspect_diff_nvram(NULL, NULL, &d, &e), 0);
  assert_int_equal(d.n, 0);
  nvram_info_free(&a);
  nvram_info_free(&b);
}

static void variable_changed_once(void **state)
{
  struct nvram_info a, b;
  load(MS_VARS, &a);
  load(MS_VARS, &b);
  poke(&a, "Timeout");
  struct inspect_diff d = { 0 };
  struct sp_err e = { 0 };
  assert_int_equal(inspect_diff_nvram(&a, &b, &d, &e), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.v[0].item, "Timeout");
  assert_string_equal(d.v[0].change, "changed");
  assert_string_equal(d.v[0].text, "variable Timeout changed: 0500 (5), was 0000 (0)");
  inspect_diff_free(&d);
  nvram_info_free(&a);
  nvram_info_free(&b);
}

static void keys_against_setup_mode(void **state)
{
  struct nvram_info ms, empty;
  load(MS_VARS, &ms);
  load(EMPTY_VARS, &empty);
  struct inspect_diff d = { 0 };
  struct sp_err e = { 0 };
  assert_int_equal(inspect_diff_nvram(&empty, &ms, &d, &e), 0);
  const struct inspect_change *sb = find(&d, "secure-boot");
  assert_non_null(sb);
  assert_string_equal(sb->text, "Secure Boot at next boot: off, was on");
  const struct inspect_change *db = find(&d, "db");
  assert_non_null(db);
  assert_string_equal(db->change, "missing");
  assert_non_null(strstr(db->text, "2 certificates"));
  /* Every live variable of the template is missing from the empty store,
   * each once, plus the Secure Boot state. */
  assert_int_equal(d.n, ms.store.nlive + 1);
  inspect_diff_free(&d);
  assert_int_equal(inspect_diff_nvram(&ms, NULL, &d, &e), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.v[0].change, "added");
  inspect_diff_free(&d);
  nvram_info_free(&ms);
  nvram_info_free(&empty);
}

static void db_certificate_removed(void **state)
{
  struct nvram_info a, b;
  load(MS_VARS, &b);
  /* A byte inside db's last certificate: one entry differs. */
  char *buf = NULL;
  size_t len;
  struct sp_err e = { 0 };
  assert_int_equal(sp_read_file(MS_VARS, 8 << 20, &buf, &len, &e), 0);
  struct efi_varstore s;
  assert_int_equal(efi_varstore_parse((uint8_t *)buf, len, &s, &e), 0);
  const struct efi_var *db = efi_varstore_find(&s, "db", &efi_guid_security);
  buf[db->data + db->data_len - 10 - (uint8_t *)buf] ^= 1;
  efi_varstore_free(&s);
  assert_int_equal(nvram_info_parse((uint8_t *)buf, len, &a, &e), 0);
  struct inspect_diff d = { 0 };
  assert_int_equal(inspect_diff_nvram(&a, &b, &d, &e), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.v[0].item, "db");
  assert_string_equal(d.v[0].change, "changed");
  assert_non_null(strstr(d.v[0].text, "db differs: 1 certificate added"));
  assert_non_null(strstr(d.v[0].text, "1 certificate missing"));
  inspect_diff_free(&d);
  nvram_info_free(&a);
  nvram_info_free(&b);
}

static void tpm_reports(void **state)
{
  static uint8_t one[8] = { 0, 0, 0, 0, 0, 0, 0, 1 }, two[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
  struct tpm_nv nv_a[] = {
    { .handle = 0x01500010, .attributes = 0x20000010, .size = 8, .read = true, .data = one,
      .data_len = 8, .sha256 = "aa" },
    { .handle = 0x01500020, .attributes = 0x2, .size = 8 },
  };
  struct tpm_nv nv_b[] = {
    { .handle = 0x01500010, .attributes = 0x20000010, .size = 8, .read = true, .data = two,
      .data_len = 8, .sha256 = "bb" },
    { .handle = 0x01400001, .attributes = 0x2, .size = 4 },
  };
  struct tpm_object ob_a[] = { { .handle = 0x81000001, .type = 1, .bits = 2048, .name = "0b01" } };
  struct tpm_object ob_b[] = { { .handle = 0x81000001, .type = 1, .bits = 2048, .name = "0b02" } };
  struct tpm_bank banks[] = { { .alg = 0x000B, .pcrs = 24 } };
  struct tpm_info a = { .version = "2.0", .queried = true, .nv = nv_a, .nnv = 2,
                        .objects = ob_a, .nobjects = 1, .banks = banks, .nbanks = 1,
                        .permanent = 0x4, .clock = 5, .reset_count = 9 };
  struct tpm_info b = { .version = "2.0", .queried = true, .nv = nv_b, .nnv = 2,
                        .objects = ob_b, .nobjects = 1, .banks = banks, .nbanks = 1,
                        .clock = 99999, .reset_count = 1 };
  struct inspect_diff d = { 0 };
  struct sp_err e = { 0 };
  assert_int_equal(inspect_diff_tpm(&a, &b, &d, &e), 0);
  assert_int_equal(d.n, 5);
  assert_string_equal(find(&d, "lockout-auth")->text, "lockout authorization set, was not set");
  assert_string_equal(find(&d, "nv 0x01500010")->text,
                      "NV index 0x01500010 content changed: 1, was 2");
  assert_string_equal(find(&d, "nv 0x01500020")->change, "added");
  assert_string_equal(find(&d, "nv 0x01400001")->text, "NV index 0x01400001 missing");
  assert_string_equal(find(&d, "key 0x81000001")->change, "changed");
  inspect_diff_free(&d);
  /* Clock and counts alone are no difference; a lost TPM is one. */
  assert_int_equal(inspect_diff_tpm(&a, &a, &d, &e), 0);
  assert_int_equal(d.n, 0);
  assert_int_equal(inspect_diff_tpm(NULL, &a, &d, &e), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.v[0].change, "missing");
  inspect_diff_free(&d);
  char why[256];
  assert_true(tpm_info_provisioned(&a, why, sizeof why));
  assert_string_equal(why, "lockout authorization set, 1 persistent storage key");
  struct tpm_object ek[] = { { .handle = 0x81010001, .name = "0b" } };
  struct tpm_info fresh = { .version = "2.0", .queried = true, .objects = ek, .nobjects = 1 };
  assert_false(tpm_info_provisioned(&fresh, why, sizeof why));
  uint64_t v;
  assert_true(tpm_nv_counter(&nv_b[0], &v));
  assert_int_equal(v, 2);
  assert_false(tpm_nv_counter(&nv_a[1], &v));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(same_store_no_difference),
    cmocka_unit_test(variable_changed_once),
    cmocka_unit_test(keys_against_setup_mode),
    cmocka_unit_test(db_certificate_removed),
    cmocka_unit_test(tpm_reports),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
