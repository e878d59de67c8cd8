/* stillpoint list DOMAIN: the points of a domain, read from their
 * manifests only (no libvirt needed: works on a backup host too). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "fsutil.h"
#include "manifest.h"
#include "point_layout.h"
#include "rbd_target.h"
#include "strv.h"

static const char usage[] =
  "usage: stillpoint list DOMAIN [--target DIR|rbd:POOL[/NAMESPACE]] [--json] [--config FILE]\n"
  "                       [--set key=value]\n"
  "Lists the backup points of DOMAIN under the policy's target directory, or in its\n"
  "Ceph pool (DOMAIN: the name its points were taken under, or its UUID).\n";

enum { OPT_TARGET = 0x2100 };

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  (void)e;
  if (opt == OPT_TARGET)
    *(const char **)user = arg;
  return 0;
}

static void human(const struct sp_point_ref *ref, const struct sp_manifest *m, const char *err)
{
  if (ref->partial) {
    printf("%-22s %-5s %-22s %10s %8s  incomplete (.partial)\n", ref->id, "", "", "", "");
    return;
  }
  if (err) {
    printf("%-22s unreadable: %s\n", ref->id, err);
    return;
  }
  unsigned long long bytes = 0;
  for (size_t i = 0; i < m->ndisks; i++)
    bytes += m->disks[i].bytes_written;
  char pause[32];
  if (m->window.paused)
    snprintf(pause, sizeof pause, "%.0f ms", m->window.pause_ms);
  else
    snprintf(pause, sizeof pause, "-");
  printf("%-22s %-5s %-22s %9.1fM %8s  %s%s%s\n", m->id, sp_level_name(m->level), m->parent ? m->parent : "-",
         (double)bytes / 1048576.0, pause, m->window.consistent ? "consistent" : "NOT consistent",
         m->tpm.present ? ", tpm" : "", m->nvram.present ? ", nvram" : "");
}

/* One entry of a Ceph point: committed (m read and checked against its
 * commit record, or err) or pending (an uncommitted run's leftovers). */
static void rbd_entry(json_object *arr, const char *name, const char *id, bool pending,
                      const struct sp_manifest *m, const char *err)
{
  if (!arr) {
    struct sp_point_ref ref = { .partial = pending };
    snprintf(ref.id, sizeof ref.id, "%s", id);
    if (pending)
      printf("%-22s %-5s %-22s %10s %8s  incomplete (not committed)\n", id, "", "", "", "");
    else
      human(&ref, m, err);
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(id));
  json_object_object_add(o, "path", json_object_new_string(name ? name : ""));
  json_object_object_add(o, "complete", json_object_new_boolean(!pending && !err));
  struct sp_err me = { 0 };
  _cleanup_free_ char *mj = NULL;
  if (!pending && !err && sp_manifest_to_json(m, &mj, &me) == 0)
    json_object_object_add(o, "manifest", json_tokener_parse(mj));
  if (err)
    json_object_object_add(o, "error", json_object_new_string(err));
  json_object_array_add(arr, o);
}

/* The points of one domain UUID in the pool. */
static int list_rbd_uuid(struct rbd_target *t, const char *uuid, json_object *arr,
                         struct sp_err *e)
{
  if (rbd_target_open_store(t, uuid, e) < 0)
    return -1;
  struct sp_rados_listing l;
  int rc = sp_rados_list(&t->store, &l, e);
  for (size_t i = 0; rc == 0 && i < l.n; i++) {
    _cleanup_free_ char *json = NULL, *name = rbd_target_point_name(t, l.points[i].id);
    size_t len;
    struct sp_manifest m = { 0 };
    struct sp_err me = { 0 };
    if (sp_rados_get_manifest(&t->store, &l.points[i], &json, &len, &me) == 0 &&
        sp_manifest_parse(json, len, &m, &me) == 0 &&
        (m.format != SP_MANIFEST_FORMAT_RBD || strcmp(m.uuid, uuid) || strcmp(m.id, l.points[i].id)))
      sp_err_set(&me, SP_EXIT_FAILED, "manifest.json is not a Ceph point of this domain (format "
                 "%d, UUID %s, id %s)", m.format, m.uuid, m.id);
    rbd_entry(arr, name, l.points[i].id, false, &m, me.code ? me.msg : NULL);
    sp_manifest_free(&m);
  }
  for (size_t i = 0; rc == 0 && i < l.npending; i++) {
    _cleanup_free_ char *name = rbd_target_point_name(t, l.pending[i]);
    rbd_entry(arr, name, l.pending[i], true, NULL, NULL);
  }
  if (rc == 0)
    sp_rados_listing_free(&l);
  sp_rados_store_close(&t->store);
  t->store_open = false;
  return rc;
}

static int list_rbd(const struct cli *c, const struct sp_config *cfg, const char *target,
                    json_object *arr, struct sp_err *e)
{
  struct rbd_target t = { 0 };
  _cleanup_(sp_strv_free) struct sp_strv uuids = SP_STRV_INIT;
  int rc = rbd_target_connect(&t, cfg, target, &c->log, e);
  if (rc == 0)
    rc = rbd_target_find_domain(&t, c->args[0], &uuids, e);
  for (size_t i = 0; rc == 0 && i < uuids.n; i++)
    rc = list_rbd_uuid(&t, uuids.v[i], arr, e);
  rbd_target_close(&t);
  return rc;
}

int cmd_list(int argc, char **argv)
{
  static const struct option opts[] = { { "target", required_argument, NULL, OPT_TARGET },
                                        { 0 } };
  struct cli c;
  struct sp_err e = { 0 };
  struct sp_config cfg = { 0 };
  const char *target = NULL;
  _cleanup_free_ struct sp_point_ref *refs = NULL;
  _cleanup_free_ char *dir = NULL;
  size_t n = 0;
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &target, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "list needs one DOMAIN\n%s", usage)) ||
      cli_load_config(&c, c.args[0], &cfg, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (rbd_target_is(target ? target : sp_config_str(&cfg, SP_KEY_TARGET))) {
    json_object *arr = c.json ? json_object_new_array() : NULL;
    if (!c.json)
      printf("%-22s %-5s %-22s %10s %8s  %s\n", "ID", "LEVEL", "PARENT", "WRITTEN", "PAUSED",
             "STATE");
    if (list_rbd(&c, &cfg, target, arr, &e) < 0)
      rc = cli_fail(&c, &e);
    else if (arr)
      puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    if (arr)
      json_object_put(arr);
    goto out;
  }
  if (asprintf(&dir, "%s/%s", target ? target : sp_config_str(&cfg, SP_KEY_TARGET),
               c.args[0]) < 0 ||
      sp_points_list(dir, &refs, &n, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  json_object *arr = c.json ? json_object_new_array() : NULL;
  if (!c.json)
    printf("%-22s %-5s %-22s %10s %8s  %s\n", "ID", "LEVEL", "PARENT", "WRITTEN", "PAUSED",
           "STATE");
  for (size_t i = 0; i < n; i++) {
    _cleanup_free_ char *pd = NULL;
    if (asprintf(&pd, "%s/%s%s", dir, refs[i].id, refs[i].partial ? SP_PARTIAL_SUFFIX : "") < 0)
      continue;
    struct sp_manifest m = { 0 };
    struct sp_err me = { 0 };
    bool ok = !refs[i].partial && sp_manifest_load(pd, &m, &me) == 0;
    if (c.json) {
      json_object *o = json_object_new_object();
      json_object_object_add(o, "id", json_object_new_string(refs[i].id));
      json_object_object_add(o, "path", json_object_new_string(pd));
      json_object_object_add(o, "complete", json_object_new_boolean(ok));
      if (ok) {
        _cleanup_free_ char *mj = NULL;
        if (sp_manifest_to_json(&m, &mj, &me) == 0)
          json_object_object_add(o, "manifest", json_tokener_parse(mj));
      } else if (!refs[i].partial) {
        json_object_object_add(o, "error", json_object_new_string(me.msg));
      }
      json_object_array_add(arr, o);
    } else {
      human(&refs[i], &m, ok || refs[i].partial ? NULL : me.msg);
    }
    sp_manifest_free(&m);
  }
  if (c.json) {
    puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
  }
out:
  sp_config_free(&cfg);
  cli_free(&c);
  return rc;
}
