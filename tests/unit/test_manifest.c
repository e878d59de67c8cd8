/* The manifest parser and the point layout (manifest.c, point_layout.c):
 * a manifest comes from a backup directory, input like any other, so
 * every field that becomes a path or an id is checked, and garbage of any
 * shape is refused with the field named, never a crash. */
#include "unit.h"

#include <unistd.h>

#include <json-c/json.h>

#include "fsutil.h"
#include "manifest.h"
#include "point_layout.h"

static char *sample_named(const char *name, size_t *len)
{
  char path[512], *buf = NULL;
  snprintf(path, sizeof path, "%s/manifests/%s", TEST_DATA_DIR, name);
  struct sp_err e = { 0 };
  assert_int_equal(sp_read_file(path, 1 << 20, &buf, len, &e), 0);
  return buf;
}

static char *sample(size_t *len)
{
  return sample_named("inc.json", len);
}

static void parses_and_round_trips(void **state)
{
  size_t len;
  char *text = sample(&len);
  struct sp_manifest m, m2;
  struct sp_err e = { 0 };
  if (sp_manifest_parse(text, len, &m, &e) < 0)
    fail_msg("%s", e.msg);
  assert_string_equal(m.id, "20261126T070000Z-inc");
  assert_string_equal(m.parent, "20261126T063000Z-full");
  assert_int_equal(m.ndisks, 1);
  assert_string_equal(m.disks[0].parent_file, "../../20261126T063000Z-full/disks/sda.qcow2");
  assert_int_equal(m.disks[0].size, 68719476736ULL);
  assert_int_equal(m.nskipped, 1);
  assert_true(m.nvram.present && m.tpm.present);
  assert_int_equal(m.tpm.mode, 0700);
  assert_string_equal(m.tpm.files[0].name, "tpm2-00.permall");
  assert_true(m.window.consistent && m.window.paused);
  assert_int_equal(m.window.frozen, 2);
  assert_non_null(sp_manifest_disk(&m, "sda"));
  assert_null(sp_manifest_disk(&m, "sdz"));
  char *out = NULL;
  assert_int_equal(sp_manifest_to_json(&m, &out, &e), 0);
  assert_null(strstr(out, "\\/")); /* paths stay readable */
  assert_int_equal(sp_manifest_parse(out, strlen(out), &m2, &e), 0);
  assert_string_equal(m2.disks[0].file, m.disks[0].file);
  assert_string_equal(m2.tpm.files[0].sha256, m.tpm.files[0].sha256);
  sp_manifest_free(&m2);
  sp_manifest_free(&m);
  free(out);
  free(text);
}

/* Changes one field (a JSON path like "disks.0.file") and expects the
 * parse to fail naming want. */
static void expect_bad(const char *field, json_object *value, const char *want)
{
  size_t len;
  char *text = sample(&len);
  json_object *root = json_tokener_parse(text);
  json_object *o = root;
  char path[128];
  snprintf(path, sizeof path, "%s", field);
  char *save = NULL, *tok = strtok_r(path, ".", &save), *next;
  while ((next = strtok_r(NULL, ".", &save))) {
    o = json_object_is_type(o, json_type_array) ? json_object_array_get_idx(o, atoi(tok))
                                                : json_object_object_get(o, tok);
    tok = next;
  }
  if (json_object_is_type(o, json_type_array))
    json_object_array_put_idx(o, (size_t)atoi(tok), value);
  else if (value)
    json_object_object_add(o, tok, value);
  else
    json_object_object_del(o, tok);
  const char *mod = json_object_to_json_string(root);
  struct sp_manifest m;
  struct sp_err e = { 0 };
  if (sp_manifest_parse(mod, strlen(mod), &m, &e) == 0)
    fail_msg("%s accepted", field);
  if (!strstr(e.msg, want))
    fail_msg("%s: '%s' lacks '%s'", field, e.msg, want);
  json_object_put(root);
  free(text);
}

#define S(x) json_object_new_string(x)

static void refuses_escapes_and_bad_forms(void **state)
{
  expect_bad("disks.0.file", S("../../../etc/passwd"), "disks[0].file");
  expect_bad("disks.0.file", S("/etc/passwd"), "disks[0].file");
  expect_bad("disks.0.file", S("disks/../x"), "disks[0].file");
  expect_bad("disks.0.file", S("nvram/x"), "disks[0].file");
  expect_bad("disks.0.parent_file", S("../../../../etc/disks/x"), "disks[0].parent_file");
  expect_bad("disks.0.parent_file", S("../../20261126T063000Z-full/../x/disks/a"),
             "disks[0].parent_file");
  expect_bad("disks.0.parent_file", NULL, "disks[0].parent_file");
  expect_bad("disks.0.target", S("a/b"), "disks[0].target");
  expect_bad("disks.0.target", S("v'a"), "disks[0].target");
  expect_bad("disks.0.target", S(".bashrc"), "disks[0].target");
  expect_bad("disks.0.image_format", S("vmdk"), "disks[0].image_format");
  expect_bad("disks.0.image_format", S("raw"), "an overlay must be qcow2");
  expect_bad("disks.0.level", S("weekly"), "disks[0].level");
  expect_bad("disks.0.size", S("big"), "disks[0].size");
  expect_bad("disks.0.size", json_object_new_int(-1), "disks[0].size");
  expect_bad("nvram.path", S("nvram/../../x"), "nvram.path");
  expect_bad("nvram.host_path", S("relative/VARS.fd"), "nvram.host_path");
  expect_bad("nvram.type", S("network"), "nvram.type");
  expect_bad("tpm.path", S("/var/lib/libvirt/swtpm"), "tpm.path");
  expect_bad("tpm.version", S("3.0"), "tpm.version");
  expect_bad("tpm.encryption_secret", S("not-a-uuid"), "tpm.encryption_secret");
  expect_bad("tpm.files.0.name", S("../permall"), "tpm.files[0].name");
  expect_bad("tpm.files.0.sha256", S("xyz"), "tpm.files[0].sha256");
  expect_bad("tpm.files.0.mode", S("rwx"), "tpm.files[0].mode");
  expect_bad("tpm.files.0.mode", S("17777"), "tpm.files[0].mode");
  expect_bad("uuid", S("../../etc"), "uuid");
  expect_bad("id", S("../x"), "id");
  expect_bad("id", S("20261126T070000Z-weekly"), "id");
  expect_bad("parent", NULL, "parent");
  expect_bad("format", json_object_new_int(3), "format");
  expect_bad("window", NULL, "window");
  expect_bad("window.pause_ms", json_object_new_double(-1), "window.pause_ms");
  /* infinity (1e999 in the text): prune could not write it back as JSON */
  expect_bad("disks.0.seconds", json_object_new_double(1.0 / 0.0), "disks[0].seconds");
  /* 1.2e123 ms: "%.3f" would be cut at the writer's buffer and read back
   * as another number (found by fuzz/manifest). */
  expect_bad("timings.copy_ms", json_object_new_double(1.2e123), "timings.copy_ms");
  expect_bad("window.pause_ms", json_object_new_double(1e12 + 1), "window.pause_ms");
  expect_bad("disks", S("many"), "disks");
}

static void refuses_garbage(void **state)
{
  static const char *const bad[] = {
    "", "{", "[]", "null", "42", "{\"format\":1}", "{} trailing",
    "{\"format\":1,\"domain\":\"x\\u0000y\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sp_manifest m;
    struct sp_err e = { 0 };
    assert_int_equal(sp_manifest_parse(bad[i], strlen(bad[i]), &m, &e), -1);
    assert_non_null(strstr(e.msg, "manifest.json"));
  }
  /* Nesting deeper than the tokenizer allows. */
  char deep[4096];
  memset(deep, '[', sizeof deep - 1);
  deep[sizeof deep - 1] = '\0';
  struct sp_manifest m;
  struct sp_err e = { 0 };
  assert_int_equal(sp_manifest_parse(deep, strlen(deep), &m, &e), -1);
  /* A NUL byte in the text. */
  assert_int_equal(sp_manifest_parse("{\"a\":1}\0{", 9, &m, &e), -1);
}

static void fuzz_mutations(void **state)
{
  size_t len;
  char *orig = sample(&len);
  char *buf = malloc(len + 1);
  uint32_t x = 7;
  int accepted = 0;
  for (int round = 0; round < 5000; round++) {
    memcpy(buf, orig, len);
    size_t n = len;
    for (int k = 0; k < 1 + round % 6; k++) {
      x = x * 1664525 + 1013904223;
      buf[(x >> 8) % len] = (char)(x >> 24);
    }
    if (round % 7 == 0)
      n = (x >> 3) % len;
    struct sp_manifest m;
    struct sp_err e = { 0 };
    if (sp_manifest_parse(buf, n, &m, &e) == 0) {
      /* Whatever is accepted keeps its paths inside the point. */
      for (size_t i = 0; i < m.ndisks; i++)
        assert_true(sp_relpath_ok(m.disks[i].file));
      accepted++;
      sp_manifest_free(&m);
    } else {
      assert_true(e.msg[0] != '\0');
    }
  }
  assert_true(accepted < 5000);
  free(buf);
  free(orig);
}

static void point_ids(void **state)
{
  char id[SP_POINT_ID_MAX];
  assert_int_equal(sp_point_id_make(1795672800, SP_LEVEL_INC, id), 0);
  assert_string_equal(id, "20261126T060000Z-inc");
  assert_true(sp_point_id_valid(id));
  assert_true(sp_point_id_valid("20261126T060000Z-full"));
  assert_true(sp_point_id_valid("20261126T060000Z-diff"));
  assert_false(sp_point_id_valid("20261126T060000Z-weekly"));
  assert_false(sp_point_id_valid("20261126T060000-full"));
  assert_false(sp_point_id_valid("../20261126T0600Z-full"));
  assert_false(sp_point_id_valid(NULL));
  assert_false(sp_point_id_valid(""));
}

static void sums(void **state)
{
  struct sp_sums s;
  struct sp_err e = { 0 };
  const char *good = "12d838919e89fbaafd0020cb88c60f2806921b989dc74c651f44a6854da83eba  domain.xml\n"
                     "12d838919e89fbaafd0020cb88c60f2806921b989dc74c651f44a6854da83eba *tpm/tpm2/x\n";
  assert_int_equal(sp_sums_parse(good, strlen(good), &s, &e), 0);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.v[1].path, "tpm/tpm2/x");
  sp_sums_free(&s);
  static const char *const bad[] = {
    "12d838919e89fbaafd0020cb88c60f2806921b989dc74c651f44a6854da83eba  ../etc/passwd\n",
    "12d838919e89fbaafd0020cb88c60f2806921b989dc74c651f44a6854da83eba  /etc/passwd\n",
    "12D838919E89FBAAFD0020CB88C60F2806921B989DC74C651F44A6854DA83EBA  x\n",
    "nothex  x\n",
    "12d838919e89fbaafd0020cb88c60f2806921b989dc74c651f44a6854da83eba x\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sp_err_clear(&e);
    assert_int_equal(sp_sums_parse(bad[i], strlen(bad[i]), &s, &e), -1);
    assert_non_null(strstr(e.msg, "SHA256SUMS:1"));
  }
}

/* The sample is what the writer emits, byte for byte: every field, in
 * order, in the writer's form.  tests/packaging/test-docs reads the
 * manifest's fields from the sample and checks stillpoint-point(5) against
 * them, so a field added to the writer fails here until the sample shows
 * it, and there until the page describes it. */
/* Points written before disks[].image_format: an overlay and a full from
 * stillpoint-copy are qcow2, another copier's full is raw; never probed. */
static void image_format_inferred_without_probing(void **state)
{
  static const struct { const char *level, *copier, *want; } cases[] = {
    { "inc", "nbdcopy x y", "qcow2" },
    { "full", NULL, "qcow2" },
    { "full", "stillpoint-copy", "qcow2" },
    { "full", "/usr/bin/stillpoint-copy --compress", "qcow2" },
    { "full", "nbdcopy \"$STILLPOINT_NBD_URI\" \"$STILLPOINT_OUTPUT\"", "raw" },
    { "full", "stillpoint-copy-wrapper", "raw" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    char *text = sample(&len);
    json_object *root = json_tokener_parse(text);
    json_object *d = json_object_array_get_idx(json_object_object_get(root, "disks"), 0);
    json_object_object_del(d, "image_format");
    json_object_object_add(d, "copier", cases[i].copier ? S(cases[i].copier) : NULL);
    if (strcmp(cases[i].level, "full") == 0) {
      json_object_object_add(d, "level", S("full"));
      json_object_object_add(d, "parent_file", NULL);
      json_object_object_add(root, "level", S("full"));
      json_object_object_add(root, "parent", NULL);
    }
    const char *mod = json_object_to_json_string(root);
    struct sp_manifest m;
    struct sp_err e = { 0 };
    if (sp_manifest_parse(mod, strlen(mod), &m, &e) < 0)
      fail_msg("%s", e.msg);
    assert_string_equal(m.disks[0].image_format, cases[i].want);
    sp_manifest_free(&m);
    json_object_put(root);
    free(text);
  }
}

static void writer_emits_the_sample(void **state)
{
  size_t len;
  char *text = sample(&len), *out = NULL;
  struct sp_manifest m;
  struct sp_err e = { 0 };
  if (sp_manifest_parse(text, len, &m, &e) < 0)
    fail_msg("%s", e.msg);
  assert_int_equal(sp_manifest_to_json(&m, &out, &e), 0);
  if (strlen(out) != len || memcmp(out, text, len) != 0)
    fail_msg("sp_manifest_to_json no longer writes tests/data/manifests/inc.json as it is: "
             "update the sample to the writer's output (every field present) and describe "
             "any new field in docs/man/stillpoint-point.5; the writer now gives:\n%s", out);
  sp_manifest_free(&m);
  free(out);
  free(text);
}

/* Format 2, a point in Ceph: disks are RBD snapshots, and the writer
 * writes tests/data/manifests/rbd.json as it is; a directory reader
 * refuses it, and a format 2 disk naming a file or a bad image name is
 * refused. */
/* "offline" is optional (points of older versions lack it) and, when
 * present, a boolean that round-trips. */
static void offline_flag(void **state)
{
  (void)state;
  size_t len;
  char *text = sample(&len);
  struct sp_manifest m;
  struct sp_err e = { 0 };
  assert_int_equal(sp_manifest_parse(text, len, &m, &e), 0);
  assert_false(m.offline);
  m.offline = true;
  char *out = NULL;
  assert_int_equal(sp_manifest_to_json(&m, &out, &e), 0);
  sp_manifest_free(&m);
  assert_int_equal(sp_manifest_parse(out, strlen(out), &m, &e), 0);
  assert_true(m.offline);
  sp_manifest_free(&m);
  free(out);
  json_object *root = json_tokener_parse(text);
  json_object_object_del(root, "offline");
  const char *old = json_object_to_json_string(root);
  assert_int_equal(sp_manifest_parse(old, strlen(old), &m, &e), 0);
  assert_false(m.offline);
  sp_manifest_free(&m);
  json_object_put(root);
  free(text);
  expect_bad("offline", S("yes"), "offline");
}

static void rbd_format(void **state)
{
  size_t len;
  char *text = sample_named("rbd.json", &len), *out = NULL;
  struct sp_manifest m;
  struct sp_err e = { 0 };
  if (sp_manifest_parse(text, len, &m, &e) < 0)
    fail_msg("%s", e.msg);
  assert_int_equal(m.format, SP_MANIFEST_FORMAT_RBD);
  assert_string_equal(m.disks[0].rbd_snapshot, m.id);
  assert_string_equal(m.disks[0].image_format, "raw");
  assert_null(m.disks[0].file);
  assert_int_equal(sp_manifest_to_json(&m, &out, &e), 0);
  if (strlen(out) != len || memcmp(out, text, len) != 0)
    fail_msg("sp_manifest_to_json no longer writes tests/data/manifests/rbd.json as it is; "
             "the writer now gives:\n%s", out);
  sp_manifest_free(&m);
  free(out);

  char dir[] = "/tmp/sp-manifest-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[600];
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fwrite(text, 1, len, f);
  fclose(f);
  sp_err_clear(&e);
  assert_int_equal(sp_manifest_load(dir, &m, &e), -1);
  assert_non_null(strstr(e.msg, "Ceph"));
  unlink(path);
  rmdir(dir);

  static const char *const bad[][2] = {
    { "\"rbd_image\":\"stillpoint.", "\"rbd_image\":\"../etc." },
    { "\"rbd_image\":\"stillpoint.", "\"rbd_image\":\"-x." },
    { "\"rbd_snapshot\":\"", "\"rbd_snapshot\":\"a@" },
    { "\"rbd_snapshot\":", "\"rbd_snapshot\":null,\"x\":" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *p = strstr(text, bad[i][0]);
    assert_non_null(p);
    char *mut = NULL;
    assert_true(asprintf(&mut, "%.*s%s%s", (int)(p - text), text, bad[i][1],
                         p + strlen(bad[i][0])) > 0);
    sp_err_clear(&e);
    if (sp_manifest_parse(mut, strlen(mut), &m, &e) == 0)
      fail_msg("accepted: %s", bad[i][1]);
    free(mut);
  }
  free(text);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(parses_and_round_trips),
    cmocka_unit_test(refuses_escapes_and_bad_forms),
    cmocka_unit_test(refuses_garbage),
    cmocka_unit_test(fuzz_mutations),
    cmocka_unit_test(point_ids),
    cmocka_unit_test(sums),
    cmocka_unit_test(image_format_inferred_without_probing),
    cmocka_unit_test(writer_emits_the_sample),
    cmocka_unit_test(rbd_format),
    cmocka_unit_test(offline_flag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
