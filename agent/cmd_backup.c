/* stillpoint backup DOMAIN|--all: the arguments.  One point is taken by
 * run_point() (backup_run.c, the protocol step by step), every enabled VM
 * by backup_all() (backup_all.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_all.h"
#include "backup_run.h"
#include "commands.h"
#include "level.h"

static const char usage[] =
  "usage: stillpoint backup DOMAIN|--all [--level auto|full|inc|diff]\n"
  "                         [--target DIR|rbd:POOL[/NAMESPACE]] [--only-offline]\n"
  "                         [-c URI] [--json] [--config FILE] [--set key=value]\n"
  "Takes one backup point of DOMAIN: disks, NVRAM and TPM state from one instant.\n"
  "--all: every VM whose policy says enabled = yes, max_parallel_vms at once.\n"
  "A shut-off VM gets an offline point (started paused, stopped again) unless\n"
  "offline = skip. --only-offline: refuse (exit 3) unless DOMAIN is shut off\n"
  "(what the hook's backup_on_stop runs).\n"
  "Exit: 0 done, 1 failed (the VM runs on; the point is left as <id>.partial),\n"
  "2 bad usage or configuration, 3 refused before the VM was touched.\n";

enum { OPT_LEVEL = 0x2000, OPT_TARGET, OPT_ALL, OPT_ONLY_OFFLINE };

struct backup_opts {
  const char *level; /* as given: --all passes it on to each VM's run */
  struct sp_level_req level_req;
  const char *target;
  bool all;
  bool only_offline;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct backup_opts *o = user;
  if (opt == OPT_LEVEL) {
    if (sp_level_req_parse(arg, &o->level_req) < 0)
      return sp_err_set(e, SP_EXIT_USAGE, "--level %s: expected auto, full, inc or diff", arg);
    o->level = arg;
  } else if (opt == OPT_TARGET) {
    o->target = arg;
  } else if (opt == OPT_ALL) {
    o->all = true;
  } else if (opt == OPT_ONLY_OFFLINE) {
    o->only_offline = true;
  }
  return 0;
}

int cmd_backup(int argc, char **argv)
{
  static const struct option opts[] = {
    { "level", required_argument, NULL, OPT_LEVEL },
    { "target", required_argument, NULL, OPT_TARGET },
    { "all", no_argument, NULL, OPT_ALL },
    { "only-offline", no_argument, NULL, OPT_ONLY_OFFLINE },
    { 0 },
  };
  struct cli c;
  struct backup_opts o = { 0 };
  struct sp_err e = { 0 };
  struct run r = RUN_INIT;
  int rc;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &o, usage, &e) < 0 ||
      ((o.all ? c.nargs != 0 : c.nargs != 1) &&
       sp_err_set(&e, SP_EXIT_USAGE, "backup needs one DOMAIN, or --all\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (o.all) {
    rc = backup_all(&c, o.level, o.target);
    goto out;
  }
  if (cli_load_config(&c, c.args[0], &r.cfg, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (o.target) {
    char *set = NULL;
    if (asprintf(&set, "target=%s", o.target) < 0 || sp_config_apply_set(&r.cfg, set, &e) < 0) {
      free(set);
      rc = cli_fail(&c, &e);
      goto out;
    }
    free(set);
  }
  r.cli = &c;
  r.log = &c.log;
  r.rbd_on = rbd_target_is(sp_config_str(&r.cfg, SP_KEY_TARGET));
  r.only_offline = o.only_offline;
  /* The config table admits only auto, full, inc or diff (level_choices). */
  const char *policy_level = sp_config_str(&r.cfg, SP_KEY_LEVEL);
  if (!o.level && sp_level_req_parse(policy_level, &o.level_req) < 0) {
    sp_err_set(&e, SP_EXIT_USAGE, "level = %s: expected auto, full, inc or diff", policy_level);
    rc = cli_fail(&c, &e);
    goto out;
  }
  rc = run_point(&r, c.args[0], o.level_req, &e) < 0 ? cli_fail(&c, &e) : SP_EXIT_OK;
out:
  run_free(&r);
  cli_free(&c);
  return rc;
}
