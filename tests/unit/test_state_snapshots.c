/* The hook's snapshot store (state_snapshots.c, snapshot_meta.c, uuid.h):
 * layout, names, verification, pruning, refusals. */
#include "unit.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "snapshot_meta.h"
#include "state_snapshots.h"
#include "uuid.h"

#define UUID "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

static void blob(struct sp_blob *b, const char *name, const char *data)
{
  memset(b, 0, sizeof *b);
  b->name = strdup(name);
  b->len = strlen(data);
  b->data = (unsigned char *)strdup(data);
  b->mode = 0640;
  b->uid = 103;
  b->gid = 106;
  sp_sha256_hex(b->data, b->len, b->sha256);
}

/* A snapshot as the hook builds it; tpm_byte varies the TPM state. */
static void make(struct sp_snapshot *s, char tpm_byte, bool with_tpm)
{
  memset(s, 0, sizeof *s);
  s->domain = strdup("vm1");
  s->uuid = strdup(UUID);
  s->event = strdup("release end -");
  if (with_tpm) {
    char perm[] = "permall-x";
    perm[8] = tpm_byte;
    s->has_tpm = true;
    s->tpm_version = strdup("2.0");
    s->tpm_subdir = strdup("tpm2");
    s->tpm_state_dir = strdup("/var/lib/libvirt/swtpm/" UUID "/tpm2");
    s->tpm.n = 2;
    s->tpm.files = calloc(2, sizeof *s->tpm.files);
    blob(&s->tpm.files[0], "tpm2-00.permall", perm);
    blob(&s->tpm.files[1], "tpm2-00.volatilestate", "volatile");
    /* the digest sp_tree_read computes for these two files */
    char line[256];
    snprintf(line, sizeof line, "%s  %s\n%s  %s\n", s->tpm.files[0].sha256,
             s->tpm.files[0].name, s->tpm.files[1].sha256, s->tpm.files[1].name);
    sp_sha256_hex(line, strlen(line), s->tpm.digest);
  }
  s->has_nvram = true;
  s->nvram_path = strdup("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd");
  blob(&s->nvram, "vm1_VARS.fd", "nvram-content");
  s->nvram_mtime_ns = 1234567890123456789LL;
  s->xml = strdup("<domain/>");
  s->xml_len = 9;
}

static mode_t mode_of(const char *path)
{
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return st.st_mode & 07777;
}

static void names(void **state)
{
  assert_true(sp_uuid_ok(UUID));
  assert_false(sp_uuid_ok("0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D")); /* libvirt prints lowercase */
  assert_false(sp_uuid_ok("../../../../etc/passwd-xxxxxxxxxxxxxxxx"));
  assert_false(sp_uuid_ok(UUID "0"));
  assert_false(sp_uuid_ok("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4"));
  assert_false(sp_uuid_ok(NULL));
  assert_true(sp_snap_id_ok("20261126T063000Z"));
  assert_true(sp_snap_id_ok("20261126T063000Z-12"));
  assert_false(sp_snap_id_ok("20261126T063000Z-"));
  assert_false(sp_snap_id_ok("20261126T063000Z-1/.."));
  assert_false(sp_snap_id_ok(".20261126T063000Z.partial"));
  assert_false(sp_snap_id_ok("20261126T0630Z"));
  assert_false(sp_snap_id_ok(".."));
}

static void write_read_roundtrip(void **state)
{
  char *dir = unit_tmpdir();
  struct sp_err e = { 0 };
  struct sp_snapshot s, r;
  make(&s, 'a', true);
  assert_int_equal(sp_snap_write(dir, &s, &e), 0);
  assert_true(sp_snap_id_ok(s.id));
  assert_non_null(s.created);

  char *sdir = NULL, *p = NULL;
  assert_true(asprintf(&sdir, "%s/%s/%s", dir, UUID, s.id) > 0);
  /* 0700 directories and 0600 files, whatever the source's mode was */
  assert_int_equal(mode_of(sdir), 0700);
  assert_true(asprintf(&p, "%s/tpm/tpm2/tpm2-00.permall", sdir) > 0);
  assert_int_equal(mode_of(p), 0600);
  free(p);
  assert_true(asprintf(&p, "%s/SHA256SUMS", sdir) > 0);
  char *sums = NULL;
  size_t len;
  assert_int_equal(sp_read_file(p, 65536, &sums, &len, &e), 0);
  free(p);
  char want[256];
  snprintf(want, sizeof want, "%s  tpm/tpm2/tpm2-00.permall\n", s.tpm.files[0].sha256);
  assert_non_null(strstr(sums, want));
  snprintf(want, sizeof want, "%s  nvram/vm1_VARS.fd\n", s.nvram.sha256);
  assert_non_null(strstr(sums, want));
  assert_non_null(strstr(sums, "  domain.xml\n"));
  assert_non_null(strstr(sums, "  snapshot.json\n"));
  free(sums);

  assert_int_equal(sp_snap_read(dir, UUID, s.id, SP_SNAP_ALL, &r, &e), 0);
  assert_string_equal(r.domain, "vm1");
  assert_string_equal(r.tpm_subdir, "tpm2");
  assert_string_equal(r.tpm.digest, s.tpm.digest);
  assert_int_equal(r.tpm.n, 2);
  assert_memory_equal(r.tpm.files[0].data, "permall-a", 9);
  assert_memory_equal(r.nvram.data, "nvram-content", 13);
  /* the source's owner and mode come back from the metadata */
  assert_int_equal(r.nvram.mode, 0640);
  assert_int_equal(r.nvram.uid, 103);
  assert_int_equal(r.nvram_mtime_ns, 1234567890123456789LL);
  assert_string_equal(r.xml, "<domain/>");
  assert_false(r.pinned);
  assert_true(sp_snap_same_state(&s, &r));
  sp_snapshot_free(&r);

  /* Recovery reads the TPM part only: no 4 MiB NVRAM read for nothing. */
  assert_int_equal(sp_snap_read(dir, UUID, s.id, SP_SNAP_TPM, &r, &e), 0);
  assert_memory_equal(r.tpm.files[0].data, "permall-a", 9);
  assert_null(r.nvram.data);
  sp_snapshot_free(&r);

  /* Damage a file: reading with data refuses, naming the snapshot. */
  assert_true(asprintf(&p, "%s/nvram/vm1_VARS.fd", sdir) > 0);
  free(unit_write(sdir, "nvram/vm1_VARS.fd", "nvram-c0ntent", 13));
  assert_int_equal(sp_snap_read(dir, UUID, s.id, SP_SNAP_ALL, &r, &e), -1);
  assert_non_null(strstr(e.msg, "damaged"));
  /* ...while its metadata still reads */
  assert_int_equal(sp_snap_read(dir, UUID, s.id, SP_SNAP_META, &r, &e), 0);
  sp_snapshot_free(&r);
  free(p);

  sp_snapshot_free(&s);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(sdir);
  free(dir);
}

static void ids_order_newest_prune_pin(void **state)
{
  char *dir = unit_tmpdir();
  struct sp_err e = { 0 };
  char *ids_written[5];
  /* Five snapshots in (almost always) one second: -2, -3... keep their order. */
  for (int i = 0; i < 5; i++) {
    struct sp_snapshot s;
    make(&s, (char)('a' + i), i != 4); /* the newest has no TPM */
    assert_int_equal(sp_snap_write(dir, &s, &e), 0);
    ids_written[i] = strdup(s.id);
    sp_snapshot_free(&s);
  }
  char **ids;
  size_t n;
  assert_int_equal(sp_snap_list(dir, UUID, &ids, &n, &e), 0);
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(ids[i], ids_written[i]);
  sp_snap_ids_free(ids, n);

  struct sp_snapshot s;
  bool found;
  assert_int_equal(sp_snap_newest(dir, UUID, SP_SNAP_META, &s, &found, &e), 0);
  assert_true(found);
  assert_string_equal(s.id, ids_written[4]);
  assert_false(s.has_tpm);
  sp_snapshot_free(&s);
  assert_int_equal(sp_snap_newest(dir, UUID, true, &s, &found, &e), 0);
  assert_true(found);
  assert_string_equal(s.id, ids_written[3]);
  sp_snapshot_free(&s);

  /* A snapshot whose metadata is unreadable is passed over by newest. */
  char *json = NULL;
  assert_true(asprintf(&json, "%s/%s/%s", dir, UUID, ids_written[4]) > 0);
  free(unit_write(json, "snapshot.json", "{ not json", 10));
  assert_int_equal(sp_snap_newest(dir, UUID, SP_SNAP_META, &s, &found, &e), 0);
  assert_string_equal(s.id, ids_written[3]);
  sp_snapshot_free(&s);
  free(json);

  /* Pin the oldest, leave an interrupted write behind, keep 2. */
  assert_int_equal(sp_snap_pin(dir, UUID, ids_written[0], "lost at start", &e), 0);
  char *partial = NULL;
  assert_true(asprintf(&partial, "%s/%s/.%s-9.partial", dir, UUID, ids_written[4]) > 0);
  assert_int_equal(mkdir(partial, 0700), 0);
  int removed = -1;
  assert_int_equal(sp_snap_prune(dir, UUID, 2, &removed, &e), 0);
  assert_int_equal(removed, 2);
  assert_false(sp_exists(partial));
  assert_int_equal(sp_snap_list(dir, UUID, &ids, &n, &e), 0);
  assert_int_equal(n, 3);
  assert_string_equal(ids[0], ids_written[0]); /* pinned */
  assert_string_equal(ids[1], ids_written[3]);
  assert_string_equal(ids[2], ids_written[4]);
  sp_snap_ids_free(ids, n);
  assert_int_equal(sp_snap_read(dir, UUID, ids_written[0], SP_SNAP_META, &s, &e), 0);
  assert_true(s.pinned);
  sp_snapshot_free(&s);

  /* forget moves all three (the pinned one too) aside: nothing is listed
   * or found any more, prune leaves them alone, a second forget has
   * nothing to do. */
  char *aside = NULL;
  size_t moved = 0;
  assert_int_equal(sp_snap_forget(dir, UUID, &aside, &moved, &e), 0);
  assert_int_equal(moved, 3);
  assert_non_null(strstr(aside, "/forgotten-"));
  assert_int_equal(sp_snap_list(dir, UUID, &ids, &n, &e), 0);
  assert_int_equal(n, 0);
  assert_int_equal(sp_snap_newest(dir, UUID, true, &s, &found, &e), 0);
  assert_false(found);
  assert_int_equal(sp_snap_prune(dir, UUID, 0, &removed, &e), 0);
  assert_int_equal(removed, 0);
  for (int i = 0; i < 5; i++) {
    char *kept = NULL;
    assert_true(asprintf(&kept, "%s/%s", aside, ids_written[i]) > 0);
    assert_int_equal(sp_exists(kept), i == 0 || i >= 3);
    free(kept);
  }
  char *again = NULL;
  assert_int_equal(sp_snap_forget(dir, UUID, &again, &moved, &e), 0);
  assert_int_equal(moved, 0);
  assert_null(again);
  free(aside);

  for (int i = 0; i < 5; i++)
    free(ids_written[i]);
  free(partial);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(dir);
}

static void refusals(void **state)
{
  char *dir = unit_tmpdir();
  struct sp_err e = { 0 };
  struct sp_snapshot s;
  /* Exactly len bytes are read: a buffer without a NUL after it (found
   * by tests/fuzz/snapshot_meta.c), a NUL inside, trailing data. */
  static const char text[] = "{\"format\":1}";
  char *exact = malloc(sizeof text - 1);
  memcpy(exact, text, sizeof text - 1);
  memset(&s, 0, sizeof s);
  assert_int_equal(sp_snap_meta_parse(exact, sizeof text - 1, &s, &e), -1);
  assert_non_null(strstr(e.msg, "'id' missing"));
  free(exact);
  assert_int_equal(sp_snap_meta_parse("{}\0{}", 5, &s, &e), -1);
  assert_int_equal(sp_snap_meta_parse("{} x", 4, &s, &e), -1);
  assert_non_null(strstr(e.msg, "not a JSON object"));
  sp_snapshot_free(&s);
  make(&s, 'a', true);
  free(s.uuid);
  s.uuid = strdup("../escape");
  assert_int_equal(sp_snap_write(dir, &s, &e), -1);
  assert_non_null(strstr(e.msg, "not a UUID"));
  char *esc = NULL;
  assert_true(asprintf(&esc, "%s/../escape", dir) > 0);
  assert_false(sp_exists(esc));
  free(esc);
  char **ids;
  size_t n;
  assert_int_equal(sp_snap_list(dir, "..", &ids, &n, &e), -1);
  int fd;
  assert_int_equal(sp_snap_lock(dir, "../x", true, &fd, &e), -1);
  struct sp_snapshot r;
  assert_int_equal(sp_snap_read(dir, UUID, "../../etc", SP_SNAP_META, &r, &e), -1);

  /* A name that would become a path outside the snapshot is refused when read. */
  const char *bad = "{\"format\":1,\"id\":\"20261126T063000Z\",\"uuid\":\"" UUID "\","
                    "\"nvram\":{\"path\":\"/x\",\"file\":\"../../etc/passwd\",\"size\":1,"
                    "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\","
                    "\"mode\":\"0600\",\"uid\":0,\"gid\":0}}";
  memset(&r, 0, sizeof r);
  assert_int_equal(sp_snap_meta_parse(bad, strlen(bad), &r, &e), -1);
  assert_non_null(strstr(e.msg, "file name"));
  sp_snapshot_free(&r);

  /* No store for a VM: an empty list, and no lock file created. */
  assert_int_equal(sp_snap_list(dir, UUID, &ids, &n, &e), 0);
  assert_int_equal(n, 0);
  assert_int_equal(sp_snap_lock(dir, UUID, SP_SNAP_META, &fd, &e), 0);
  assert_int_equal(fd, -1);

  /* The lock excludes a second holder. */
  assert_int_equal(sp_snap_lock(dir, UUID, true, &fd, &e), 0);
  char *lock = NULL;
  assert_true(asprintf(&lock, "%s/%s/.lock", dir, UUID) > 0);
  int other = open(lock, O_RDWR);
  assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
  close(fd);
  assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
  close(other);
  free(lock);

  sp_snapshot_free(&s);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(dir);
}

static void stat_fingerprint(void **state)
{
  char *dir = unit_tmpdir();
  struct sp_err e = { 0 };
  free(unit_write(dir, "tpm2-00.permall", "abc", 3));
  free(unit_write(dir, ".lock", "", 0));
  char *a = NULL, *b = NULL;
  assert_int_equal(sp_snap_stat_sig(dir, &a, &e), 0);
  assert_non_null(strstr(a, "tpm2-00.permall 3 "));
  assert_null(strstr(a, ".lock"));
  /* swtpm's lock and temp files come and go without changing the state */
  free(unit_write(dir, "TMP2-00.permall", "half", 4));
  assert_int_equal(sp_snap_stat_sig(dir, &b, &e), 0);
  assert_string_equal(a, b);
  free(b);
  /* the same bytes written again: a new ctime, another fingerprint (after
   * a pause longer than a coarse kernel clock tick) */
  usleep(20000);
  free(unit_write(dir, "tpm2-00.permall", "abc", 3));
  assert_int_equal(sp_snap_stat_sig(dir, &b, &e), 0);
  assert_string_not_equal(a, b);
  free(b);
  free(a);

  /* It travels in snapshot.json. */
  struct sp_snapshot s, r;
  make(&s, 'a', true);
  s.tpm_stat = strdup("tpm2-00.permall 9 1 2.000000003 4.000000005\n");
  assert_int_equal(sp_snap_write(dir, &s, &e), 0);
  assert_int_equal(sp_snap_read(dir, UUID, s.id, SP_SNAP_META, &r, &e), 0);
  assert_string_equal(r.tpm_stat, s.tpm_stat);
  sp_snapshot_free(&r);
  sp_snapshot_free(&s);
  assert_int_equal(sp_snap_stat_sig("/nonexistent", &a, &e), -1);
  assert_int_equal(sp_rm_rf(dir, &e), 0);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(names),
    cmocka_unit_test(write_read_roundtrip),
    cmocka_unit_test(ids_order_newest_prune_pin),
    cmocka_unit_test(refusals),
    cmocka_unit_test(stat_fingerprint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
