/* Retention of points in a Ceph pool (docs/design.md, "Points in Ceph"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "level_plan.h"
#include "cleanup.h"
#include "point_layout.h"
#include "prune.h"
#include "strv.h"
#include "xalloc.h"

static void note(json_object *actions, const char *action, const char *what, const char *name)
{
  if (!actions)
    return;
  json_object *j = json_object_new_object();
  json_object_object_add(j, "action", json_object_new_string(action));
  json_object_object_add(j, what, json_object_new_string(name));
  json_object_array_add(actions, j);
}

/* Everything point m consists of: its files (as its SHA256SUMS lists
 * them, and SHA256SUMS), each disk's snapshot, and each disk's image (it
 * goes only once no snapshot is left in it). */
static int point_items(struct rbd_target *t, const struct sp_manifest *m, struct sp_strv *it,
                       struct sp_err *e)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  struct sp_sums sums = { 0 };
  if (rbd_target_read(t, m->id, "SHA256SUMS", &text, &len, e) < 0 ||
      sp_sums_parse(text, len, &sums, e) < 0)
    return sp_err_prefix(e, "point %s", m->id);
  sp_strv_push(it, "SHA256SUMS");
  for (size_t i = 0; i < sums.n; i++)
    sp_strv_push(it, sums.v[i].path);
  sp_sums_free(&sums);
  for (size_t i = 0; i < m->ndisks; i++) {
    sp_strv_push_take(it, sp_xasprintf("@%s@%s", m->disks[i].rbd_image,
                                       m->disks[i].rbd_snapshot));
    sp_strv_push_take(it, sp_xasprintf("@%s", m->disks[i].rbd_image));
  }
  return 0;
}

int prune_rbd(virDomainPtr dom, struct rbd_target *t, long keep, bool dry_run,
              const struct sp_log *log, json_object *actions, struct sp_err *e)
{
  struct sp_manifest *m = NULL;
  size_t n = 0;
  if (keep <= 0)
    return 0;
  if (rbd_target_load_points(t, &m, &n, e) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && n > (size_t)keep && i < n - (size_t)keep; i++) {
    _cleanup_free_ char *name = rbd_target_point_name(t, m[i].id);
    if (dry_run) {
      sp_info(log, "would remove point %s", name ? name : m[i].id);
      note(actions, "would remove", "point", m[i].id);
      continue;
    }
    struct sp_strv it = SP_STRV_INIT;
    rc = point_items(t, &m[i], &it, e);
    if (rc == 0)
      rc = sp_rados_uncommit(&t->store, m[i].id, (const char *const *)it.v, it.n, e);
    sp_strv_free(&it);
    if (rc < 0)
      break;
    sp_info(log, "removed point %s", name ? name : m[i].id);
    note(actions, "removed", "point", m[i].id);
    /* No later point starts from an older point's checkpoint. */
    struct sp_err ce = { 0 };
    if (dom && m[i].checkpoint && checkpoint_delete(dom, m[i].checkpoint, &ce) < 0)
      sp_warn(log, "%s", ce.msg);
  }
  size_t removed = 0;
  _cleanup_(sp_strv_free) struct sp_strv kept = SP_STRV_INIT;
  if (rc == 0 && !dry_run)
    rc = sp_rados_cleanup(&t->store, &removed, &kept, e);
  for (size_t i = 0; i < kept.n; i++)
    sp_warn(log, "%s", kept.v[i]);
  for (size_t i = 0; i < n; i++)
    sp_manifest_free(&m[i]);
  free(m);
  return rc;
}
