#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

enum { OPT_JSON = 0x1000, OPT_CONFIG, OPT_SET, OPT_HELP, OPT_SSH_KEY };

static const struct option common_opts[] = {
  { "connect", required_argument, NULL, 'c' },
  { "json", no_argument, NULL, OPT_JSON },
  { "config", required_argument, NULL, OPT_CONFIG },
  { "set", required_argument, NULL, OPT_SET },
  { "quiet", no_argument, NULL, 'q' },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "ssh-key", required_argument, NULL, OPT_SSH_KEY },
};

int cli_parse(struct cli *c, int argc, char **argv, const struct option *extra,
              cli_extra_fn fn, void *user, const char *usage, struct sp_err *e)
{
  memset(c, 0, sizeof *c);
  c->log.prog = "stillpoint";
  size_t ncommon = sizeof common_opts / sizeof common_opts[0], nextra = 0;
  while (extra && extra[nextra].name)
    nextra++;
  struct option *all = sp_xcalloc(ncommon + nextra + 1, sizeof *all);
  memcpy(all, common_opts, sizeof common_opts);
  if (nextra)
    memcpy(all + ncommon, extra, nextra * sizeof *all);

  int rc = 0, opt;
  optind = 1;
  opterr = 0;
  while (rc == 0 && (opt = getopt_long(argc, argv, "c:qv", all, NULL)) != -1) {
    switch (opt) {
    case 'c': c->uri = optarg; break;
    case 'q': c->log.quiet = true; break;
    case 'v': c->log.debug = true; break;
    case OPT_JSON: c->json = true; break;
    case OPT_CONFIG: c->config_file = optarg; break;
    case OPT_SSH_KEY: c->ssh_key = optarg; break;
    case OPT_SET:
      c->sets = sp_xreallocarray(c->sets, c->nsets + 1, sizeof *c->sets);
      c->sets[c->nsets++] = optarg;
      break;
    case OPT_HELP:
      fputs(usage, stdout);
      free(all);
      cli_free(c);
      exit(SP_EXIT_OK);
    case '?':
      rc = sp_err_set(e, SP_EXIT_USAGE, "unknown option or missing argument: %s\n%s",
                      argv[optind - 1], usage);
      break;
    default:
      rc = fn ? fn(user, opt, optarg, e)
              : sp_err_set(e, SP_EXIT_USAGE, "unexpected option\n%s", usage);
    }
  }
  free(all);
  c->args = argv + optind;
  c->nargs = argc - optind;
  return rc;
}

void cli_free(struct cli *c)
{
  free(c->sets);
  c->sets = NULL;
}

int cli_load_config(const struct cli *c, const char *domain, struct sp_config *cfg,
                    struct sp_err *e)
{
  struct sp_config_args a = {
    .domain = domain,
    .config_file = c->config_file,
    .sets = c->sets,
    .nsets = c->nsets,
  };
  return sp_config_load(cfg, &a, e);
}

int cli_fail(const struct cli *c, const struct sp_err *e)
{
  sp_error(&c->log, "%s", e->msg);
  return e->code ? e->code : SP_EXIT_FAILED;
}
