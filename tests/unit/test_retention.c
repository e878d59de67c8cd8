/* Retention's decisions (agent/retention.c): which points stay, which are
 * merged, and which libvirt checkpoints a future point still needs - with
 * the sequence an administrator hit with keep = 3, full_every = 3, where a
 * middle incremental's checkpoint was deleted and every diff after the
 * first merge silently became a full copy. */
#include "unit.h"

#include "manifest.h"
#include "retention.h"

#define MAXP 64

struct set {
  struct sp_manifest p[MAXP];
  struct sp_manifest *m[MAXP];
  bool kept[MAXP];
  bool changed[MAXP];
  bool needed[MAXP];
  struct retention r;
};

static char *dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

static enum sp_level lv(const char *name)
{
  enum sp_level l = SP_LEVEL_COUNT;
  assert_int_equal(sp_level_parse(name, &l), 0);
  return l;
}

/* Appends point id of level (full | inc | diff) building on parent (the
 * chain's full is looked up, as the backup writes it). */
static size_t add(struct set *s, const char *id, const char *level, const char *parent)
{
  size_t i = s->r.n++;
  assert_true(i < MAXP);
  struct sp_manifest *m = &s->p[i];
  memset(m, 0, sizeof *m);
  m->id = strdup(id);
  m->level = lv(level);
  m->checkpoint = strdup(id);
  m->parent = dup_or_null(parent);
  m->parent_checkpoint = dup_or_null(parent);
  s->m[i] = m;
  if (parent) {
    size_t q = retention_find(&s->r, parent);
    assert_true(q != RETENTION_NONE);
    m->full = strdup(s->m[q]->level == SP_LEVEL_FULL ? s->m[q]->id : s->m[q]->full);
  }
  m->ndisks = 1;
  m->disks = calloc(1, sizeof *m->disks);
  m->disks[0].target = strdup("vda");
  m->disks[0].level = lv(level);
  m->disks[0].file = strdup("disks/vda.qcow2");
  m->disks[0].image_format = strdup("qcow2");
  if (parent)
    assert_true(asprintf(&m->disks[0].parent_file, "../../%s/disks/vda.qcow2", parent) > 0);
  return i;
}

static void init(struct set *s)
{
  memset(s, 0, sizeof *s);
  s->r.m = s->m;
  s->r.kept = s->kept;
}

static void done(struct set *s)
{
  for (size_t i = 0; i < s->r.n; i++)
    sp_manifest_free(&s->p[i]);
}

/* Drops point i, as prune removes a point that is not kept. */
static void drop(struct set *s, size_t i)
{
  sp_manifest_free(&s->p[i]);
  memmove(&s->p[i], &s->p[i + 1], (s->r.n - i - 1) * sizeof s->p[0]);
  s->r.n--;
  for (size_t k = 0; k < s->r.n; k++)
    s->m[k] = &s->p[k];
}

static void keep_newest(void **state)
{
  struct set s;
  init(&s);
  add(&s, "1", "full", NULL);
  add(&s, "2", "inc", "1");
  add(&s, "3", "inc", "2");
  add(&s, "4", "inc", "3");
  add(&s, "5", "full", NULL);
  retention_keep_newest(&s.r, 3);
  assert_false(s.kept[0]);
  assert_false(s.kept[1]);
  assert_true(s.kept[2] && s.kept[3] && s.kept[4]);
  retention_keep_newest(&s.r, 0); /* 0 (and below) keeps everything */
  for (size_t i = 0; i < s.r.n; i++)
    assert_true(s.kept[i]);
  retention_keep_newest(&s.r, 9); /* more than there are */
  for (size_t i = 0; i < s.r.n; i++)
    assert_true(s.kept[i]);
  done(&s);
}

static void needs_unkept_and_keep_chain(void **state)
{
  struct set s;
  init(&s);
  add(&s, "1", "full", NULL);
  add(&s, "2", "inc", "1");
  add(&s, "3", "inc", "2");
  add(&s, "4", "diff", "1");
  retention_keep_newest(&s.r, 2); /* 3 and 4 */
  assert_true(retention_needs_unkept(&s.r, 2));  /* reaches 2 (and 1) */
  assert_true(retention_needs_unkept(&s.r, 3));  /* a diff reaches its full */
  s.kept[1] = true;
  assert_true(retention_needs_unkept(&s.r, 2));  /* through 2 it still reaches 1 */
  s.kept[0] = true;
  assert_false(retention_needs_unkept(&s.r, 2));
  assert_false(retention_needs_unkept(&s.r, 0)); /* a full needs nothing */
  /* A point that cannot be merged keeps its whole chain. */
  retention_keep_newest(&s.r, 1);
  retention_keep_chain_of(&s.r, 2);
  assert_true(s.kept[0] && s.kept[1]);
  assert_false(s.kept[2]); /* itself: the caller decided that */
  /* A parent that is not there at all is needed and unkept. */
  free(s.p[3].disks[0].parent_file);
  s.p[3].disks[0].parent_file = strdup("../../gone/disks/vda.qcow2");
  assert_true(retention_needs_unkept(&s.r, 3));
  assert_int_equal(retention_disk_parent(&s.r, &s.p[3].disks[0]), RETENTION_NONE);
  done(&s);
}

static void merged_manifest_is_a_full(void **state)
{
  struct set s;
  init(&s);
  add(&s, "1", "full", NULL);
  add(&s, "2", "inc", "1");
  struct sp_manifest *m = &s.p[1];
  free(m->disks[0].image_format);
  m->disks[0].image_format = NULL;
  retention_merged_manifest(m);
  assert_int_equal(m->level, SP_LEVEL_FULL);
  assert_null(m->parent);
  assert_null(m->full);
  /* The stale parent checkpoint went with the parent ... */
  assert_null(m->parent_checkpoint);
  /* ... its own stays: the next diff starts from it. */
  assert_string_equal(m->checkpoint, "2");
  assert_null(m->disks[0].parent_file);
  assert_int_equal(m->disks[0].level, SP_LEVEL_FULL);
  assert_string_equal(m->disks[0].image_format, "qcow2");
  done(&s);
}

static void chain_full_and_full_ids(void **state)
{
  struct set s;
  init(&s);
  add(&s, "1", "full", NULL);
  add(&s, "2", "inc", "1");
  add(&s, "3", "inc", "2");
  add(&s, "4", "inc", "3");
  add(&s, "5", "diff", "1");
  assert_int_equal(retention_chain_full(&s.r, 3), 0);
  assert_int_equal(retention_chain_full(&s.r, 0), 0);
  assert_int_equal(retention_chain_full(&s.r, 4), 0);
  /* 2 merged: 3 and 4 now start there; the unkept ones are left alone. */
  retention_keep_newest(&s.r, 3);
  retention_merged_manifest(&s.p[2]);
  retention_fix_full_ids(&s.r, s.changed);
  assert_string_equal(s.p[3].full, "3");
  assert_true(s.changed[3]);
  assert_false(s.changed[2]); /* a full has no full id */
  assert_false(s.changed[4]); /* 5 still starts at 1 */
  assert_false(s.changed[1]); /* not kept */
  assert_string_equal(s.p[1].full, "1");
  /* A broken chain has no full; a cycle is cut. */
  free(s.p[3].parent);
  s.p[3].parent = strdup("gone");
  assert_int_equal(retention_chain_full(&s.r, 3), RETENTION_NONE);
  free(s.p[3].parent);
  s.p[3].parent = strdup("4");
  s.p[2].level = SP_LEVEL_INC;
  free(s.p[2].parent);
  s.p[2].parent = strdup("4");
  assert_int_equal(retention_chain_full(&s.r, 3), RETENTION_NONE);
  done(&s);
}

static void checkpoints_of_newest_chain(void **state)
{
  struct set s;
  init(&s);
  add(&s, "1", "full", NULL);
  add(&s, "2", "inc", "1");
  add(&s, "3", "inc", "2");
  /* keep = 3: 2 is merged into a full once 1 goes, and the next diff starts
   * from its checkpoint: every point of the newest's chain keeps its own. */
  retention_checkpoints_needed(&s.r, 3, s.needed);
  assert_true(s.needed[0] && s.needed[1] && s.needed[2]);
  /* keep = 0: nothing is ever merged: the newest's and the full's only. */
  retention_checkpoints_needed(&s.r, 0, s.needed);
  assert_true(s.needed[0] && !s.needed[1] && s.needed[2]);
  /* A new full: the old chain needs nothing any more. */
  add(&s, "4", "full", NULL);
  retention_checkpoints_needed(&s.r, 3, s.needed);
  assert_true(!s.needed[0] && !s.needed[1] && !s.needed[2] && s.needed[3]);
  /* Diffs: the newest and the full, never an older diff. */
  add(&s, "5", "diff", "4");
  add(&s, "6", "diff", "4");
  retention_checkpoints_needed(&s.r, 3, s.needed);
  assert_true(s.needed[3] && !s.needed[4] && s.needed[5]);
  done(&s);
  init(&s);
  retention_checkpoints_needed(&s.r, 3, s.needed); /* no point: nothing to do */
  done(&s);
}

/* One prune as prune_domain decides it (every point verifies); the
 * checkpoints it deletes are cleared in alive[] (indexed by point id). */
static void prune_once(struct set *s, long keep, bool *alive)
{
  retention_keep_newest(&s->r, keep);
  for (size_t i = 0; i < s->r.n; i++)
    if (s->kept[i] && retention_needs_unkept(&s->r, i))
      retention_merged_manifest(&s->p[i]);
  retention_fix_full_ids(&s->r, s->changed);
  retention_checkpoints_needed(&s->r, keep, s->needed);
  for (size_t i = 0; i < s->r.n; i++)
    if (!s->needed[i])
      alive[atoi(s->p[i].id)] = false;
  for (size_t i = s->r.n; i-- > 0;)
    if (!s->kept[i])
      drop(s, i);
}

/* keep = 3, full_every = 3, prune after every point, 20 points: the point
 * the next diff starts from (the newest chain's full) always still has its
 * checkpoint, and so does the one the next inc starts from. */
static void keep3_full_every3_diff_base_survives(void **state)
{
  for (long keep = 1; keep <= 5; keep++) {
    struct set s;
    bool alive[MAXP] = { false };
    init(&s);
    int incs = 0;
    for (int k = 1; k <= 20; k++) {
      char id[8];
      snprintf(id, sizeof id, "%d", k);
      bool full = s.r.n == 0 || incs >= 3;
      add(&s, id, full ? "full" : "inc", full ? NULL : s.p[s.r.n - 1].id);
      incs = full ? 0 : incs + 1;
      alive[k] = true;
      prune_once(&s, keep, alive);
      assert_true(s.r.n <= (size_t)keep);
      size_t last = s.r.n - 1;
      size_t f = retention_chain_full(&s.r, last);
      assert_true(f != RETENTION_NONE);
      assert_true(alive[atoi(s.p[last].id)]);
      assert_true(alive[atoi(s.p[f].id)]);
      /* A merged full carries no parent checkpoint. */
      if (s.p[0].level == SP_LEVEL_FULL)
        assert_null(s.p[0].parent_checkpoint);
      /* Bitmaps stay bounded: at most keep (+ the newest) are alive. */
      int n = 0;
      for (int q = 1; q <= k; q++)
        n += alive[q];
      assert_true(n <= keep + 1);
    }
    done(&s);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(keep_newest),
    cmocka_unit_test(needs_unkept_and_keep_chain),
    cmocka_unit_test(merged_manifest_is_a_full),
    cmocka_unit_test(chain_full_and_full_ids),
    cmocka_unit_test(checkpoints_of_newest_chain),
    cmocka_unit_test(keep3_full_every3_diff_base_survives),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
