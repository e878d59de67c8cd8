/* The NVRAM parsers of inspect (efi_varstore.c, efi_siglist.c,
 * efi_loadopt.c, nvram_info.c): the variable store of OVMF's own
 * templates on this machine (the ovmf package), stores built here record
 * by record the way edk2 writes them (replace in flight, headers being
 * written), and malformed input of every kind refused with its place
 * named, never a crash. */
#include "unit.h"

#include "efi_loadopt.h"
#include "efi_siglist.h"
#include "efi_varstore.h"
#include "fsutil.h"
#include "nvram_info.h"

#define MS_VARS "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
#define EMPTY_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"
#define TEST_GUID "5b2a0c4e-7d1f-4e8a-9c3b-2f6d8e0a1b47"

static uint8_t *load(const char *path, size_t *len)
{
  char *buf = NULL;
  struct sp_err e = { 0 };
  if (sp_read_file(path, 8 << 20, &buf, len, &e) < 0)
    fail_msg("%s (install the ovmf package)", e.msg);
  return (uint8_t *)buf;
}

static void put32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends an authenticated-format record at the store's free space, as
 * edk2 does (sp_ovmf.add_var in the e2e tests), with the given state;
 * returns its offset. */
static size_t append(uint8_t *img, size_t len, const char *name, const char *guid,
                     const void *data, uint32_t dlen, uint8_t state)
{
  struct efi_varstore s;
  struct sp_err e = { 0 };
  if (efi_varstore_parse(img, len, &s, &e) < 0)
    fail_msg("%s", e.msg);
  size_t off = s.vars_end;
  efi_varstore_free(&s);
  size_t nlen = strlen(name);
  uint32_t nsize = (uint32_t)(2 * (nlen + 1));
  uint8_t *h = img + off;
  memset(h, 0, 60);
  h[0] = 0xAA;
  h[1] = 0x55;
  h[2] = state;
  put32(h + 4, EFI_VAR_NON_VOLATILE | EFI_VAR_BOOTSERVICE_ACCESS | EFI_VAR_RUNTIME_ACCESS);
  put32(h + 36, nsize);
  put32(h + 40, dlen);
  efi_guid_t g;
  assert_int_equal(efi_str_to_guid(guid, &g), 0);
  memcpy(h + 44, &g, 16);
  for (size_t i = 0; i <= nlen; i++) {
    h[60 + 2 * i] = (uint8_t)name[i];
    h[61 + 2 * i] = 0;
  }
  memcpy(h + 60 + nsize, data, dlen);
  return off;
}

static void ms_template(void **state)
{
  size_t len;
  uint8_t *img = load(MS_VARS, &len);
  struct efi_varstore s;
  struct sp_err e = { 0 };
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_true(s.authenticated);
  /* Measured on Debian 12's ovmf 2022.11: 57 records, 31 of them live. */
  assert_int_equal(s.n, 57);
  assert_int_equal(s.nlive, 31);
  assert_int_equal(s.store_offset + s.store_size - s.vars_end, s.free_bytes);
  const struct efi_var *pk = efi_varstore_find(&s, "PK", &efi_guid_global);
  assert_non_null(pk);
  assert_int_equal(pk->attributes, 0x27);
  assert_non_null(efi_varstore_find(&s, "db", &efi_guid_security));
  /* BootOrder is deleted in the template: the firmware makes one at boot. */
  assert_null(efi_varstore_find(&s, "BootOrder", &efi_guid_global));
  char attrs[64];
  efi_var_attr_text(pk->attributes, attrs, sizeof attrs);
  assert_string_equal(attrs, "NV,BS,RT,AT");
  char g[37];
  efi_guid_text(&pk->guid, g);
  assert_string_equal(g, "8be4df61-93ca-11d2-aa0d-00e098032b8c");
  efi_varstore_free(&s);
  free(img);
}

static void empty_template(void **state)
{
  size_t len;
  uint8_t *img = load(EMPTY_VARS, &len);
  struct nvram_info ni;
  struct sp_err e = { 0 };
  assert_int_equal(nvram_info_parse(img, len, &ni, &e), 0);
  assert_int_equal(ni.store.n, 0);
  assert_true(ni.setup_mode);
  assert_false(ni.secure_boot);
  assert_false(ni.keys[NVRAM_PK].present);
  assert_int_equal(ni.secure_boot_enable, -1);
  assert_int_equal(ni.nboot, 0);
  assert_int_equal(ni.store.free_bytes,
                   ni.store.store_offset + ni.store.store_size - ni.store.vars_start);
  nvram_info_free(&ni);
}

static void ms_nvram_info(void **state)
{
  size_t len;
  uint8_t *img = load(MS_VARS, &len);
  struct nvram_info ni;
  struct sp_err e = { 0 };
  assert_int_equal(nvram_info_parse(img, len, &ni, &e), 0);
  assert_false(ni.setup_mode);
  assert_true(ni.secure_boot);
  assert_int_equal(ni.secure_boot_enable, 1);
  const struct nvram_keydb *db = &ni.keys[NVRAM_DB];
  assert_true(db->present);
  assert_null(db->error);
  assert_int_equal(db->list.certificates, 2);
  assert_int_equal(db->list.hashes, 0);
  bool pca = false;
  for (size_t i = 0; i < db->list.n; i++)
    pca |= db->list.sigs[i].subject &&
           strstr(db->list.sigs[i].subject, "CN=Microsoft Windows Production PCA 2011");
  assert_true(pca);
  assert_non_null(db->list.sigs[0].not_after);
  assert_int_equal(ni.keys[NVRAM_KEK].list.certificates, 2);
  assert_int_equal(ni.keys[NVRAM_PK].list.certificates, 1);
  assert_int_equal(ni.keys[NVRAM_DBX].list.hashes, 1);
  assert_string_equal(ni.keys[NVRAM_DBX].list.sigs[0].type, "sha256");
  /* Boot entries with their device paths, as libefivar writes them. */
  assert_int_equal(ni.nboot, 3);
  assert_int_equal(ni.boot[1].num, 1);
  assert_null(ni.boot[1].error);
  assert_string_equal(ni.boot[1].opt.description, "UEFI QEMU HARDDISK QM00001 ");
  assert_string_equal(ni.boot[1].opt.path, "PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0,65535,0)");
  assert_true(ni.boot[1].opt.attributes & EFI_LOAD_OPTION_ACTIVE);
  assert_false(ni.has_boot_order);
  nvram_info_free(&ni);
}

/* edk2 replaces a variable by marking the old copy IN_DELETED_TRANSITION,
 * appending the new one, then deleting the old: at each step exactly one
 * copy is live. */
static void replace_in_flight(void **state)
{
  size_t len;
  uint8_t *img = load(EMPTY_VARS, &len);
  uint64_t one = 1, two = 2;
  size_t first = append(img, len, "SpTest", TEST_GUID, &one, 8, EFI_VAR_ADDED);
  struct efi_varstore s;
  struct sp_err e = { 0 };
  efi_guid_t g;
  efi_str_to_guid(TEST_GUID, &g);

  img[first + 2] = EFI_VAR_IN_DELETED_TRANSITION; /* step 1: old marked */
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_int_equal(efi_varstore_find(&s, "SpTest", &g)->data[0], 1);
  efi_varstore_free(&s);

  size_t second = append(img, len, "SpTest", TEST_GUID, &two, 8, EFI_VAR_HEADER_VALID_ONLY);
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0); /* step 2: new header only */
  assert_int_equal(efi_varstore_find(&s, "SpTest", &g)->data[0], 1);
  assert_int_equal(s.n, 2);
  efi_varstore_free(&s);

  img[second + 2] = EFI_VAR_ADDED; /* step 3: new added, old still in transition */
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_int_equal(efi_varstore_find(&s, "SpTest", &g)->data[0], 2);
  assert_int_equal(s.nlive, 1);
  efi_varstore_free(&s);

  img[first + 2] = EFI_VAR_IN_DELETED_TRANSITION & 0xFD; /* step 4: old deleted */
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_int_equal(efi_varstore_find(&s, "SpTest", &g)->data[0], 2);
  assert_int_equal(s.nlive, 1);
  assert_int_equal(s.reclaimable, s.vars[0].record_len);
  efi_varstore_free(&s);
  free(img);
}

static void header_being_written(void **state)
{
  size_t len;
  uint8_t *img = load(EMPTY_VARS, &len);
  uint64_t v = 7;
  append(img, len, "Good", TEST_GUID, &v, 8, EFI_VAR_ADDED);
  size_t off = append(img, len, "Half", TEST_GUID, &v, 8, 0xFF);
  struct efi_varstore s;
  struct sp_err e = { 0 };
  /* State 0xFF: edk2 walks it as a header without name and data. */
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_int_equal(s.nlive, 1);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.vars[1].data_len, 0);
  efi_varstore_free(&s);
  /* A header written with sizes past the store, not yet ADDED: the end. */
  img[off + 2] = EFI_VAR_HEADER_VALID_ONLY;
  put32(img + off + 40, 0x7FFFFFF0);
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), 0);
  assert_int_equal(s.n, 1);
  efi_varstore_free(&s);
  /* The same sizes in a live record: damage, named with its offset. */
  img[off + 2] = EFI_VAR_ADDED;
  assert_int_equal(efi_varstore_parse(img, len, &s, &e), -1);
  assert_non_null(strstr(e.msg, "runs past the end"));
  free(img);
}

static void refuses_garbage(void **state)
{
  size_t len;
  uint8_t *img = load(EMPTY_VARS, &len);
  struct efi_varstore s;
  struct sp_err e = { 0 };
  assert_int_equal(efi_varstore_parse(img, 40, &s, &e), -1);
  assert_non_null(strstr(e.msg, "_FVH"));
  assert_int_equal(efi_varstore_parse(img, len / 2, &s, &e), -1);
  assert_non_null(strstr(e.msg, "truncated"));
  uint8_t *copy = malloc(len);
  memcpy(copy, img, len);
  copy[16] ^= 1; /* file system GUID */
  assert_int_equal(efi_varstore_parse(copy, len, &s, &e), -1);
  memcpy(copy, img, len);
  size_t hlen = copy[48] | copy[49] << 8;
  copy[hlen] ^= 1; /* store GUID */
  assert_int_equal(efi_varstore_parse(copy, len, &s, &e), -1);
  assert_non_null(strstr(e.msg, "signature GUID"));
  memcpy(copy, img, len);
  put32(copy + hlen + 16, 0xFFFFFFF0); /* store size */
  assert_int_equal(efi_varstore_parse(copy, len, &s, &e), -1);
  memcpy(copy, img, len);
  copy[hlen + 21] = 0xFF; /* unhealthy */
  assert_int_equal(efi_varstore_parse(copy, len, &s, &e), -1);
  memcpy(copy, img, len);
  copy[48] = 8; /* header length */
  copy[49] = 0;
  assert_int_equal(efi_varstore_parse(copy, len, &s, &e), -1);
  free(copy);
  free(img);
}

static void utf16_names(void **state)
{
  const uint8_t pair[] = { 'A', 0, 0x3D, 0xD8, 0x00, 0xDE, 'z', 0, 0, 0, 'x', 0 };
  char *s = efi_utf16_to_utf8(pair, sizeof pair);
  assert_string_equal(s, "A\xF0\x9F\x98\x80z"); /* U+1F600, stops at NUL */
  free(s);
  const uint8_t lone[] = { 0x00, 0xDC, 0xE9, 0x00 };
  s = efi_utf16_to_utf8(lone, sizeof lone);
  assert_string_equal(s, "\xEF\xBF\xBD\xC3\xA9");
  free(s);
  s = efi_utf16_to_utf8(lone, 1); /* odd size: no unit */
  assert_string_equal(s, "");
  free(s);
}

static void siglist_shapes(void **state)
{
  uint8_t buf[28 + 16 + 32 + 16 + 32];
  memset(buf, 0, sizeof buf);
  memcpy(buf, &efi_guid_sha256, 16);
  put32(buf + 16, sizeof buf);
  put32(buf + 24, 48);
  buf[28 + 16] = 0xAB;
  struct efi_siglist l;
  struct sp_err e = { 0 };
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), 0);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.hashes, 2);
  assert_int_equal(l.certificates, 0);
  assert_true(efi_siglist_has(&l, &l.sigs[1]));
  assert_string_not_equal(l.sigs[0].sha256, l.sigs[1].sha256);
  efi_siglist_free(&l);
  assert_int_equal(efi_siglist_parse(buf, 0, &l, &e), 0); /* empty: no entries */
  assert_int_equal(l.n, 0);
  efi_siglist_free(&l);
  put32(buf + 16, sizeof buf + 1); /* list longer than the data */
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), -1);
  assert_non_null(strstr(e.msg, "offset 0"));
  put32(buf + 16, sizeof buf);
  put32(buf + 24, 10); /* entry smaller than its owner GUID */
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), -1);
  put32(buf + 24, 47); /* entries not whole */
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), -1);
  put32(buf + 24, 48);
  put32(buf + 20, 0xFFFFFFFF); /* header size */
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), -1);
  assert_int_equal(efi_siglist_parse(buf, 27, &l, &e), -1);
  /* A certificate OpenSSL cannot read is kept, and named. */
  put32(buf + 20, 0);
  memcpy(buf, &efi_guid_x509_cert, 16);
  assert_int_equal(efi_siglist_parse(buf, sizeof buf, &l, &e), 0);
  assert_int_equal(l.certificates, 2);
  assert_null(l.sigs[0].subject);
  assert_non_null(l.unreadable);
  efi_siglist_free(&l);
}

static void load_options(void **state)
{
  /* attributes, path length, "A\0" in UCS-2, a PCI node, End Entire */
  uint8_t opt[] = { 1, 0, 0, 0, 10, 0, 'A', 0, 0, 0,
                    0x01, 0x01, 6, 0, 2, 3,   /* HW PCI: function 2, device 3 */
                    0x7F, 0xFF, 4, 0, 0xEE };
  struct efi_loadopt o;
  struct sp_err e = { 0 };
  assert_int_equal(efi_loadopt_parse(opt, sizeof opt, &o, &e), 0);
  assert_string_equal(o.description, "A");
  assert_string_equal(o.path, "Pci(0x3,0x2)");
  assert_int_equal(o.optional_len, 1);
  efi_loadopt_free(&o);
  /* A node claiming less than its header, or past the list: refused. */
  opt[12] = 3;
  assert_int_equal(efi_loadopt_parse(opt, sizeof opt, &o, &e), -1);
  opt[12] = 9;
  assert_int_equal(efi_loadopt_parse(opt, sizeof opt, &o, &e), -1);
  opt[12] = 6;
  opt[16] = 0x01; /* no End node */
  assert_int_equal(efi_loadopt_parse(opt, sizeof opt, &o, &e), -1);
  assert_non_null(strstr(e.msg, "end"));
  opt[16] = 0x7F;
  opt[4] = 200; /* path longer than the option */
  assert_int_equal(efi_loadopt_parse(opt, sizeof opt, &o, &e), -1);
  /* A hardware vendor node too short for its GUID: libefivar 37 would
   * format a "negative" number of vendor bytes (found by the fuzzer). */
  const uint8_t short_vendor[] = { 1, 0, 0, 0, 10, 0, 0, 0, 1, 4, 6, 0, 2, 3, 0x7F, 0xFF, 4, 0 };
  assert_int_equal(efi_loadopt_parse(short_vendor, sizeof short_vendor, &o, &e), -1);
  assert_non_null(strstr(e.msg, "type 1/4"));
  const uint8_t unterminated[] = { 1, 0, 0, 0, 0, 0, 'A', 0, 'B' };
  assert_int_equal(efi_loadopt_parse(unterminated, sizeof unterminated, &o, &e), -1);
  assert_int_equal(efi_loadopt_parse(opt, 5, &o, &e), -1);

  uint16_t *order;
  size_t n;
  const uint8_t bo[] = { 1, 0, 0, 0, 0x34, 0x12 };
  assert_int_equal(efi_bootorder_parse(bo, sizeof bo, &order, &n, &e), 0);
  assert_int_equal(n, 3);
  assert_int_equal(order[2], 0x1234);
  free(order);
  assert_int_equal(efi_bootorder_parse(bo, 3, &order, &n, &e), -1);
  uint16_t num;
  assert_true(efi_boot_var_name("Boot00aF", &num));
  assert_int_equal(num, 0xAF);
  assert_false(efi_boot_var_name("Boot00a", &num));
  assert_false(efi_boot_var_name("BootOrder", &num));
  assert_false(efi_boot_var_name("Boot00aG", &num));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(ms_template),
    cmocka_unit_test(empty_template),
    cmocka_unit_test(ms_nvram_info),
    cmocka_unit_test(replace_in_flight),
    cmocka_unit_test(header_being_written),
    cmocka_unit_test(refuses_garbage),
    cmocka_unit_test(utf16_names),
    cmocka_unit_test(siglist_shapes),
    cmocka_unit_test(load_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
