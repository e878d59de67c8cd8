/* Options every subcommand shares (-c URI, --json, --config, --set, -q,
 * -v) and the parser that hands the others to the subcommand. */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "log.h"

struct cli {
  const char *uri;
  const char *ssh_key;   /* --ssh-key: the key for a qemu+ssh URI */
  bool json;
  const char *config_file;
  const char **sets;
  size_t nsets;
  struct sp_log log;
  /* positional arguments left after the options */
  char **args;
  int nargs;
};

/* Called for an option that is not a common one; returns 0, or -1 with e
 * set.  opt is getopt_long's return value, arg its optarg. */
typedef int (*cli_extra_fn)(void *user, int opt, const char *arg, struct sp_err *e);

/* extra: the subcommand's own long options (terminated by a zero entry),
 * may be NULL.  usage: printed for --help (then exit 0). */
int cli_parse(struct cli *c, int argc, char **argv, const struct option *extra,
              cli_extra_fn fn, void *user, const char *usage, struct sp_err *e);
void cli_free(struct cli *c);

/* Loads the policy for a domain (NULL: global only) from the files and
 * the --config/--set of the command line. */
int cli_load_config(const struct cli *c, const char *domain, struct sp_config *cfg,
                    struct sp_err *e);

/* Prints e on stderr and returns its exit code. */
int cli_fail(const struct cli *c, const struct sp_err *e);

#endif
