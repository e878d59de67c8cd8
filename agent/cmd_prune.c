/* stillpoint prune [DOMAIN|--all]: retention by the policy's `keep`, never
 * breaking a chain (prune.c).  Takes the VM's lock, so it never removes
 * what a running backup writes. */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "fsutil.h"
#include "hypervisor.h"
#include "prune.h"
#include "stale_job.h"
#include "strv.h"
#include "virt.h"
#include "vm_lock.h"
#include "xalloc.h"

static const char usage[] =
  "usage: stillpoint prune DOMAIN|--all [--dry-run] [--target DIR|rbd:POOL[/NAMESPACE]]\n"
  "                        [-c URI] [--json]\n"
  "                        [--config FILE] [--set key=value]\n"
  "Keeps the newest `keep` points of each domain (policy), merging where a kept point\n"
  "depends on one that goes, and deletes libvirt checkpoints no future point needs.\n";

enum { OPT_ALL = 0x2300, OPT_DRY_RUN, OPT_TARGET };

struct prune_opts {
  bool all, dry_run;
  const char *target;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct prune_opts *o = user;
  (void)e;
  if (opt == OPT_ALL)
    o->all = true;
  else if (opt == OPT_DRY_RUN)
    o->dry_run = true;
  else if (opt == OPT_TARGET)
    o->target = arg;
  return 0;
}

/* One domain in a Ceph pool: each UUID its name maps to (or the domain's
 * own), under the VM's lock in the pool; a dry run takes no lock and
 * changes nothing, not even a failed run's leftovers. */
static int prune_rbd_one(const struct cli *c, const struct prune_opts *o,
                         const struct sp_config *cfg, virDomainPtr dom, const char *name,
                         json_object *actions, struct sp_err *e)
{
  struct rbd_target t = { 0 };
  _cleanup_(sp_strv_free) struct sp_strv uuids = SP_STRV_INIT;
  char own[VIR_UUID_STRING_BUFLEN] = "";
  int rc = rbd_target_connect(&t, cfg, o->target, &c->log, e);
  if (rc == 0)
    rc = rbd_target_find_domain(&t, dom && virDomainGetUUIDString(dom, own) == 0 ? own : name,
                                &uuids, e);
  for (size_t i = 0; rc == 0 && i < uuids.n; i++) {
    rc = rbd_target_open_store(&t, uuids.v[i], e);
    if (rc == 0 && !o->dry_run)
      rc = rbd_target_lock(&t, "prune", e);
    /* This domain's own record: a failed run's checkpoint goes with its
     * leftovers (another UUID of the name is another VM's). */
    if (rc == 0 && !o->dry_run && dom && strcmp(uuids.v[i], own) == 0)
      stale_checkpoints_drop(dom, &t.left_ids, &c->log);
    if (rc == 0)
      rc = prune_rbd(dom, &t, sp_config_int(cfg, SP_KEY_KEEP), o->dry_run, &c->log, actions, e);
    rbd_target_close_store(&t);
  }
  rbd_target_close(&t);
  return rc;
}

/* One domain; its directory may outlive its libvirt definition. */
static int prune_one(const struct cli *c, const struct prune_opts *o, virConnectPtr conn,
                     const char *name, json_object *out, struct sp_err *e)
{
  struct sp_config cfg = { 0 };
  _cleanup_free_ char *dir = NULL;
  _cleanup_dom_ virDomainPtr dom = NULL;
  struct vm_lock lock = { -1 };
  int rc = -1;
  if (cli_load_config(c, name, &cfg, e) < 0)
    goto done;
  dir = sp_xasprintf("%s/%s", o->target ? o->target : sp_config_str(&cfg, SP_KEY_TARGET), name);
  dom = virDomainLookupByName(conn, name);
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (dom && (virDomainGetUUIDString(dom, uuid) < 0 ||
              vm_lock_take(uuid, name, "prune", &lock, e) < 0))
    goto done;
  json_object *actions = out ? json_object_new_array() : NULL;
  if (rbd_target_is(o->target ? o->target : sp_config_str(&cfg, SP_KEY_TARGET)))
    rc = prune_rbd_one(c, o, &cfg, dom, name, actions, e);
  else
    rc = prune_domain(dom, dir, sp_config_int(&cfg, SP_KEY_KEEP), o->dry_run, &c->log, actions,
                      e);
  if (out) {
    json_object *j = json_object_new_object();
    json_object_object_add(j, "domain", json_object_new_string(name));
    json_object_object_add(j, "ok", json_object_new_boolean(rc == 0));
    json_object_object_add(j, "actions", actions);
    if (rc < 0)
      json_object_object_add(j, "error", json_object_new_string(e->msg));
    json_object_array_add(out, j);
  }
done:
  vm_lock_release(&lock);
  sp_config_free(&cfg);
  return rc;
}

int cmd_prune(int argc, char **argv)
{
  static const struct option opts[] = {
    { "all", no_argument, NULL, OPT_ALL },
    { "dry-run", no_argument, NULL, OPT_DRY_RUN },
    { "target", required_argument, NULL, OPT_TARGET },
    { 0 },
  };
  struct cli c;
  struct prune_opts o = { 0 };
  struct sp_err e = { 0 };
  struct sp_config cfg = { 0 };
  struct hypervisor hv = { 0 };
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &o, usage, &e) < 0 ||
      ((o.all ? c.nargs != 0 : c.nargs != 1) &&
       sp_err_set(&e, SP_EXIT_USAGE, "prune needs one DOMAIN or --all\n%s", usage)) ||
      cli_load_config(&c, NULL, &cfg, &e) < 0 || hypervisor_open(&hv, &c, &cfg, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  json_object *out = c.json ? json_object_new_array() : NULL;
  if (!o.all) {
    if (prune_one(&c, &o, hv.conn, c.args[0], out, &e) < 0)
      rc = cli_fail(&c, &e);
  } else if (rbd_target_is(o.target ? o.target : sp_config_str(&cfg, SP_KEY_TARGET))) {
    /* Every domain the pool's stillpoint.vms names, defined here or not. */
    _cleanup_(sp_strv_free) struct sp_strv names = SP_STRV_INIT;
    struct rbd_target t = { 0 };
    if (rbd_target_connect(&t, &cfg, o.target, &c.log, &e) < 0 ||
        rbd_target_domain_names(&t, &names, &e) < 0)
      rc = cli_fail(&c, &e);
    rbd_target_close(&t);
    for (size_t i = 0; i < names.n; i++) {
      sp_err_clear(&e);
      if (prune_one(&c, &o, hv.conn, names.v[i], out, &e) < 0) {
        sp_error(&c.log, "%s: %s", names.v[i], e.msg);
        rc = SP_EXIT_FAILED;
      }
    }
  } else {
    /* Every domain directory under the target, defined in libvirt or not. */
    const char *target = o.target ? o.target : sp_config_str(&cfg, SP_KEY_TARGET);
    _cleanup_closedir_ DIR *d = opendir(target);
    struct dirent *de;
    while (d && (de = readdir(d))) {
      _cleanup_free_ char *p = sp_path_join(target, de->d_name);
      if (de->d_name[0] == '.' || !p || !sp_is_dir(p))
        continue;
      sp_err_clear(&e);
      if (prune_one(&c, &o, hv.conn, de->d_name, out, &e) < 0) {
        sp_error(&c.log, "%s: %s", de->d_name, e.msg);
        rc = SP_EXIT_FAILED;
      }
    }
  }
  if (out) {
    puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(out);
  }
out:
  hypervisor_close(&hv);
  sp_config_free(&cfg);
  cli_free(&c);
  return rc;
}
