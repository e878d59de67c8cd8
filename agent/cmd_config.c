/* stillpoint config show DOMAIN: the effective policy of a VM and where
 * each value comes from (built-in default, FILE:LINE, --set). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "config.h"

static const char usage[] =
  "usage: stillpoint config show [DOMAIN] [--json] [--config FILE] [--set key=value]\n"
  "Prints the effective policy (of DOMAIN, with its vm.d file) and the source of each value.\n";

int cmd_config(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct sp_config cfg = { 0 };
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, NULL, NULL, NULL, usage, &e) < 0 ||
      ((c.nargs < 1 || c.nargs > 2 || strcmp(c.args[0], "show") != 0) &&
       sp_err_set(&e, SP_EXIT_USAGE, "%s", usage)) ||
      cli_load_config(&c, c.nargs == 2 ? c.args[1] : NULL, &cfg, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  json_object *o = c.json ? json_object_new_object() : NULL;
  const char *section = "";
  for (int k = 0; k < SP_KEY__COUNT; k++) {
    const struct sp_key_def *d = sp_config_key_def(k);
    if (o) {
      json_object *j = json_object_new_object();
      json_object_object_add(j, "section", json_object_new_string(d->section));
      json_object_object_add(j, "value", json_object_new_string(sp_config_str(&cfg, k)));
      json_object_object_add(j, "source", json_object_new_string(cfg.source[k]));
      json_object_object_add(o, d->name, j);
      continue;
    }
    if (strcmp(section, d->section) != 0) {
      printf("%s[%s]\n", k ? "\n" : "", d->section);
      section = d->section;
    }
    char kv[256];
    snprintf(kv, sizeof kv, "%s = %s", d->name, sp_config_str(&cfg, k));
    printf("%-44s # %s\n", kv, cfg.source[k]);
  }
  if (o) {
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
out:
  sp_config_free(&cfg);
  cli_free(&c);
  return rc;
}
