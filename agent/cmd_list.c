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

static const char usage[] =
  "usage: stillpoint list DOMAIN [--target DIR] [--json] [--config FILE] [--set key=value]\n"
  "Lists the backup points of DOMAIN under the policy's target directory.\n";

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
  printf("%-22s %-5s %-22s %9.1fM %8s  %s%s%s\n", m->id, m->level, m->parent ? m->parent : "-",
         (double)bytes / 1048576.0, pause, m->window.consistent ? "consistent" : "NOT consistent",
         m->tpm.present ? ", tpm" : "", m->nvram.present ? ", nvram" : "");
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
