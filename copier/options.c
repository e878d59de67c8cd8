#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copier_contract.h"
#include "xalloc.h"

#define BITMAP_PREFIX "qemu:dirty-bitmap:"

enum {
  OPT_URI = 256, OPT_DISK, OPT_SIZE, OPT_LEVEL, OPT_BITMAP, OPT_OUTPUT, OPT_PARENT,
  OPT_COMPRESS, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_INTERVAL, OPT_REQSIZE, OPT_REQUESTS,
  OPT_CONNS, OPT_CEPH_CONF, OPT_CEPH_USER, OPT_CEPH_KEYRING, OPT_CEPH_TIMEOUT,
};

static const struct option long_opts[] = {
  { "uri", required_argument, NULL, OPT_URI },
  { "disk", required_argument, NULL, OPT_DISK },
  { "size", required_argument, NULL, OPT_SIZE },
  { "level", required_argument, NULL, OPT_LEVEL },
  { "bitmap", required_argument, NULL, OPT_BITMAP },
  { "output", required_argument, NULL, OPT_OUTPUT },
  { "parent", required_argument, NULL, OPT_PARENT },
  { "compress", no_argument, NULL, OPT_COMPRESS },
  { "progress", optional_argument, NULL, OPT_PROGRESS },
  { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
  { "progress-interval", required_argument, NULL, OPT_INTERVAL },
  { "request-size", required_argument, NULL, OPT_REQSIZE },
  { "requests", required_argument, NULL, OPT_REQUESTS },
  { "connections", required_argument, NULL, OPT_CONNS },
  { "ceph-conf", required_argument, NULL, OPT_CEPH_CONF },
  { "ceph-user", required_argument, NULL, OPT_CEPH_USER },
  { "ceph-keyring", required_argument, NULL, OPT_CEPH_KEYRING },
  { "ceph-timeout", required_argument, NULL, OPT_CEPH_TIMEOUT },
  { "help", no_argument, NULL, 'h' },
  { "version", no_argument, NULL, 'V' },
  { NULL, 0, NULL, 0 },
};

void copy_usage(FILE *out)
{
  fputs("Usage: stillpoint-copy [OPTION]...\n"
        "Copy one disk from an NBD export into a qcow2 image: a full image, or an\n"
        "overlay holding only the changed clusters on top of the previous image.\n"
        "The STILLPOINT_* variables of the copier contract give the values shown with\n"
        "them; an option overrides its variable.\n"
        "\n"
        "  --uri URI            NBD export to read          STILLPOINT_NBD_URI\n"
        "  --disk NAME          disk name for messages      STILLPOINT_DISK\n"
        "  --size BYTES         expected virtual size       STILLPOINT_DISK_SIZE\n"
        "  --level LEVEL        full, inc or diff           STILLPOINT_LEVEL\n"
        "  --bitmap CONTEXT     meta context of the changes STILLPOINT_BITMAP\n"
        "                       (a bare NAME means qemu:dirty-bitmap:NAME)\n"
        "  --output FILE        qcow2 image to create       STILLPOINT_OUTPUT\n"
        "           rbd:POOL[/NAMESPACE]/IMAGE@SNAPSHOT   or an RBD snapshot to create\n"
        "  --parent FILE        previous image (inc, diff)  STILLPOINT_PARENT_OUTPUT\n"
        "                       (for RBD: the same image @ the parent's snapshot)\n"
        "  --compress           write compressed (zstd) clusters\n"
        "  --progress[=MODE]    auto (default), live, lines or off\n"
        "  --no-progress        the same as --progress=off\n"
        "  --progress-interval SECONDS   between progress lines (default 10)\n"
        "  --request-size BYTES size of read requests (default 1M; K, M suffixes)\n"
        "  --requests N         requests in flight (default 32)\n"
        "  --connections N      source connections if multi-conn (default 2)\n"
        "  --ceph-conf FILE     Ceph configuration          STILLPOINT_CEPH_CONF\n"
        "  --ceph-user NAME     Ceph client name (admin)    STILLPOINT_CEPH_USER\n"
        "  --ceph-keyring FILE  its keyring                 STILLPOINT_CEPH_KEYRING\n"
        "  --ceph-timeout S     Ceph op timeout (60)        STILLPOINT_CEPH_TIMEOUT\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n"
        "\n"
        "Exit status: 0 the image is complete and durable, 1 the copy failed (no\n"
        "output is left behind), 2 bad usage.  See stillpoint-copy(1).\n",
        out);
}

int copy_parse_size(const char *s, uint64_t *out)
{
  if (!s || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno)
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case 'K': case 'k': shift = 10; end++; break;
  case 'M': case 'm': shift = 20; end++; break;
  case 'G': case 'g': shift = 30; end++; break;
  default: break;
  }
  if (*end || (shift && v > (UINT64_MAX >> shift)))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
  uint64_t v;
  if (copy_parse_size(s, &v) < 0 || strpbrk(s, "KkMmGg") || v < lo || v > hi)
    return -1;
  *out = (unsigned)v;
  return 0;
}

static int parse_progress(const char *s, enum sp_progress_mode *out)
{
  static const char *const names[] = { "auto", "live", "lines", "off" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i])) {
      *out = (enum sp_progress_mode)i;
      return 0;
    }
  return -1;
}

/* Replaces *slot with a copy of v; an empty value counts as not set. */
static void set_str(char **slot, const char *v)
{
  free(*slot);
  *slot = v && *v ? sp_xstrdup(v) : NULL;
}

static int from_env(sp_getenv_fn *env, struct copy_opts *o, struct sp_err *e)
{
  set_str(&o->uri, env(SP_ENV_NBD_URI));
  set_str(&o->disk, env(SP_ENV_DISK));
  set_str(&o->bitmap, env(SP_ENV_BITMAP));
  set_str(&o->output, env(SP_ENV_OUTPUT));
  set_str(&o->parent, env(SP_ENV_PARENT_OUTPUT));
  set_str(&o->ceph_conf, env(SP_ENV_CEPH_CONF));
  set_str(&o->ceph_user, env(SP_ENV_CEPH_USER));
  set_str(&o->ceph_keyring, env(SP_ENV_CEPH_KEYRING));
  const char *v = env(SP_ENV_LEVEL);
  if (v && *v && sp_level_parse(v, &o->level) < 0)
    return sp_err_set(e, SP_EXIT_USAGE, SP_ENV_LEVEL "=%s: expected full, inc or diff", v);
  v = env(SP_ENV_CEPH_TIMEOUT);
  if (v && *v && parse_uint(v, 5, 3600, &o->ceph_timeout) < 0)
    return sp_err_set(e, SP_EXIT_USAGE, SP_ENV_CEPH_TIMEOUT "=%s: expected 5 to 3600 seconds",
                      v);
  v = env(SP_ENV_STALL_TIMEOUT_S);
  if (v && *v && parse_uint(v, 0, 86400, &o->stall_timeout_s) < 0)
    return sp_err_set(e, SP_EXIT_USAGE, SP_ENV_STALL_TIMEOUT_S "=%s: expected 0 to 86400 "
                      "seconds", v);
  v = env(SP_ENV_DISK_SIZE);
  if (v && *v && (copy_parse_size(v, &o->size) < 0 || o->size == 0))
    return sp_err_set(e, SP_EXIT_USAGE, SP_ENV_DISK_SIZE "=%s: expected a size in bytes", v);
  return 0;
}

static int from_argv(int argc, char *argv[], struct copy_opts *o, struct sp_err *e)
{
  optind = 0; /* glibc: a full re-initialisation, so the parser can run twice */
  opterr = 0; /* our own one-line message instead of getopt's */
  int c;
  while ((c = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
    switch (c) {
    case OPT_URI: set_str(&o->uri, optarg); break;
    case OPT_DISK: set_str(&o->disk, optarg); break;
    case OPT_BITMAP: set_str(&o->bitmap, optarg); break;
    case OPT_OUTPUT: set_str(&o->output, optarg); break;
    case OPT_PARENT: set_str(&o->parent, optarg); break;
    case OPT_SIZE:
      if (copy_parse_size(optarg, &o->size) < 0 || o->size == 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--size %s: expected a size in bytes", optarg);
      break;
    case OPT_LEVEL:
      if (sp_level_parse(optarg, &o->level) < 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--level %s: expected full, inc or diff", optarg);
      break;
    case OPT_COMPRESS: o->compress = true; break;
    case OPT_PROGRESS:
      if (optarg && parse_progress(optarg, &o->progress) < 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--progress=%s: expected auto, live, lines or off",
                          optarg);
      if (!optarg)
        o->progress = SP_PROGRESS_AUTO;
      break;
    case OPT_NO_PROGRESS: o->progress = SP_PROGRESS_OFF; break;
    case OPT_INTERVAL: {
      char *end;
      errno = 0;
      double v = strtod(optarg, &end);
      if (errno || *end || end == optarg || !isfinite(v) || v <= 0 || v > 86400)
        return sp_err_set(e, SP_EXIT_USAGE, "--progress-interval %s: expected seconds > 0",
                          optarg);
      o->progress_interval = v;
      break;
    }
    case OPT_REQSIZE:
      if (copy_parse_size(optarg, &o->request_size) < 0 ||
          o->request_size < SP_COPY_CLUSTER || o->request_size > SP_COPY_MAX_REQUEST ||
          o->request_size % SP_COPY_CLUSTER)
        return sp_err_set(e, SP_EXIT_USAGE,
                          "--request-size %s: expected a multiple of 64K from 64K to 32M",
                          optarg);
      break;
    case OPT_REQUESTS:
      if (parse_uint(optarg, 1, SP_COPY_MAX_REQUESTS, &o->requests) < 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--requests %s: expected 1 to %d", optarg,
                          SP_COPY_MAX_REQUESTS);
      break;
    case OPT_CONNS:
      if (parse_uint(optarg, 1, SP_COPY_MAX_CONNECTIONS, &o->connections) < 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--connections %s: expected 1 to %d", optarg,
                          SP_COPY_MAX_CONNECTIONS);
      break;
    case OPT_CEPH_CONF: set_str(&o->ceph_conf, optarg); break;
    case OPT_CEPH_USER: set_str(&o->ceph_user, optarg); break;
    case OPT_CEPH_KEYRING: set_str(&o->ceph_keyring, optarg); break;
    case OPT_CEPH_TIMEOUT:
      if (parse_uint(optarg, 5, 3600, &o->ceph_timeout) < 0)
        return sp_err_set(e, SP_EXIT_USAGE, "--ceph-timeout %s: expected 5 to 3600 seconds",
                          optarg);
      break;
    case 'h': o->help = true; break;
    case 'V': o->version = true; break;
    case ':':
      return sp_err_set(e, SP_EXIT_USAGE, "%s needs a value", argv[optind - 1]);
    default:
      return sp_err_set(e, SP_EXIT_USAGE, "unknown option %s", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return sp_err_set(e, SP_EXIT_USAGE, "unexpected argument %s", argv[optind]);
  return 0;
}

/* The disk name when none is given: the output's file name without .qcow2. */
static char *default_disk(const char *output)
{
  const char *base = strrchr(output, '/');
  base = base ? base + 1 : output;
  size_t n = strlen(base);
  if (n > 6 && !strcmp(base + n - 6, ".qcow2"))
    n -= 6;
  return sp_xstrndup(base, n);
}

static int check(struct copy_opts *o, struct sp_err *e)
{
  if (!o->uri)
    return sp_err_set(e, SP_EXIT_USAGE, "no NBD export: set STILLPOINT_NBD_URI or --uri");
  if (!o->output)
    return sp_err_set(e, SP_EXIT_USAGE, "no output file: set STILLPOINT_OUTPUT or --output");
  if (o->level == SP_LEVEL_FULL && (o->bitmap || o->parent))
    return sp_err_set(e, SP_EXIT_USAGE, "level full takes no %s (it copies the whole disk)",
                      o->bitmap ? "bitmap" : "parent image");
  if (o->level != SP_LEVEL_FULL && (!o->bitmap || !o->parent))
    return sp_err_set(e, SP_EXIT_USAGE, "level %s needs %s", sp_level_name(o->level),
                      !o->bitmap ? "a bitmap (STILLPOINT_BITMAP or --bitmap)"
                                 : "a parent image (STILLPOINT_PARENT_OUTPUT or --parent)");
  if (o->bitmap && !strchr(o->bitmap, ':')) {
    char *full = sp_xasprintf(BITMAP_PREFIX "%s", o->bitmap);
    free(o->bitmap);
    o->bitmap = full;
  }
  if (!o->disk)
    o->disk = default_disk(o->output);
  return 0;
}

int copy_opts_parse(int argc, char *argv[], sp_getenv_fn *env, struct copy_opts *o,
                    struct sp_err *e)
{
  *o = (struct copy_opts){
    .level = SP_LEVEL_FULL,
    .progress = SP_PROGRESS_AUTO,
    .progress_interval = 10,
    .request_size = 1024 * 1024,
    .requests = 32,
    .connections = 2,
  };
  if (from_env(env, o, e) < 0 || from_argv(argc, argv, o, e) < 0)
    return -1;
  if (o->help || o->version)
    return 0;
  return check(o, e);
}

void copy_opts_free(struct copy_opts *o)
{
  free(o->uri);
  free(o->disk);
  free(o->output);
  free(o->parent);
  free(o->bitmap);
  free(o->ceph_conf);
  free(o->ceph_user);
  free(o->ceph_keyring);
  *o = (struct copy_opts){ 0 };
}
