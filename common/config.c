#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_config.h"
#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

static const char *const freeze_choices[] = { "auto", "required", "off", NULL };
static const char *const onoff_choices[] = { "on", "off", NULL };
static const char *const need_choices[] = { "required", "optional", "skip", NULL };
static const char *const level_choices[] = { "auto", "full", "inc", "diff", NULL };
static const char *const recover_choices[] = { "off", "auto", NULL };
static const char *const transport_choices[] = { "unix", "tcp", NULL };
static const char *const image_format_choices[] = { "qcow2", "raw", NULL };
static const char *const offline_choices[] = { "backup", "skip", NULL };
/* Words an int key accepts beside its numbers (sp_config_int reads 0). */
static const char *const parallel_words[] = { "auto", NULL };

/* The one table of keys: config/stillpoint.conf documents each of them. */
static const struct sp_key_def keys[SP_KEY__COUNT] = {
  [SP_KEY_TARGET] = { "target", "defaults", SP_T_PATH, "/var/lib/stillpoint/backups" },
  [SP_KEY_ENABLED] = { "enabled", "defaults", SP_T_BOOL, "yes" },
  [SP_KEY_FREEZE] = { "freeze", "defaults", SP_T_ENUM, "auto", freeze_choices },
  [SP_KEY_FREEZE_TIMEOUT_S] = { "freeze_timeout_s", "defaults", SP_T_INT, "5", NULL, 1, 60 },
  [SP_KEY_FREEZE_MOUNTPOINTS] = { "freeze_mountpoints", "defaults", SP_T_STRING, "", NULL, 0, 0,
                                  true },
  [SP_KEY_PAUSE] = { "pause", "defaults", SP_T_ENUM, "on", onoff_choices },
  [SP_KEY_PAUSE_MAX_MS] = { "pause_max_ms", "defaults", SP_T_INT, "2000", NULL, 50, 600000 },
  [SP_KEY_TPM] = { "tpm", "defaults", SP_T_ENUM, "required", need_choices },
  [SP_KEY_NVRAM] = { "nvram", "defaults", SP_T_ENUM, "required", need_choices },
  [SP_KEY_LEVEL] = { "level", "defaults", SP_T_ENUM, "auto", level_choices },
  [SP_KEY_FULL_EVERY] = { "full_every", "defaults", SP_T_INT, "7", NULL, 0, 100000 },
  [SP_KEY_KEEP] = { "keep", "defaults", SP_T_INT, "0", NULL, 0, 100000 },
  [SP_KEY_COPIER] = { "copier", "defaults", SP_T_STRING, "stillpoint-copy" },
  [SP_KEY_COPIER_FORMAT] = { "copier_format", "defaults", SP_T_ENUM, "qcow2",
                             image_format_choices },
  /* auto: an incremental's disks at once, a full one's one at a time
   * (copy_parallel.c says why). */
  [SP_KEY_PARALLEL] = { "parallel", "defaults", SP_T_INT, "auto", parallel_words, 1, 64 },
  [SP_KEY_STALL_TIMEOUT_S] = { "stall_timeout_s", "defaults", SP_T_INT, "300", NULL, 0, 86400 },
  /* 23 h: a daily schedule's next run finds the VM free, and the run
   * fails with its own message before the units' TimeoutStartSec=1d. */
  [SP_KEY_RUN_TIMEOUT_S] = { "run_timeout_s", "defaults", SP_T_INT, "82800", NULL, 0, 604800 },
  [SP_KEY_MAX_PARALLEL_VMS] = { "max_parallel_vms", "defaults", SP_T_INT, "1", NULL, 1, 64 },
  [SP_KEY_SCRATCH_DIR] = { "scratch_dir", "defaults", SP_T_PATH, "/var/lib/stillpoint/scratch" },
  [SP_KEY_TRANSPORT] = { "transport", "defaults", SP_T_ENUM, "unix", transport_choices },
  [SP_KEY_NBD_HOST] = { "nbd_host", "defaults", SP_T_STRING, "", NULL, 0, 0, true },
  [SP_KEY_NBD_PORT_MIN] = { "nbd_port_min", "defaults", SP_T_INT, "10809", NULL, 1, 65535 },
  [SP_KEY_NBD_PORT_MAX] = { "nbd_port_max", "defaults", SP_T_INT, "10872", NULL, 1, 65535 },
  [SP_KEY_TLS_CLIENT_DIR] = { "tls_client_dir", "defaults", SP_T_PATH, "/etc/pki/stillpoint" },
  [SP_KEY_SSH_KEY] = { "ssh_key", "defaults", SP_T_STRING, "", NULL, 0, 0, true },
  [SP_KEY_OFFLINE] = { "offline", "defaults", SP_T_ENUM, "backup", offline_choices },
  [SP_KEY_SNAPSHOT_ON_STOP] = { "snapshot_on_stop", "hook", SP_T_BOOL, "yes" },
  [SP_KEY_KEEP_SNAPSHOTS] = { "keep_snapshots", "hook", SP_T_INT, "5", NULL, 1, 1000 },
  [SP_KEY_RECOVER_TPM] = { "recover_tpm", "hook", SP_T_ENUM, "auto", recover_choices },
  [SP_KEY_BLOCK_START_ON_TPM_LOSS] = { "block_start_on_tpm_loss", "hook", SP_T_BOOL, "no" },
  [SP_KEY_STATE_DIR] = { "state_dir", "hook", SP_T_PATH, "/var/lib/stillpoint/state" },
  [SP_KEY_BACKUP_ON_STOP] = { "backup_on_stop", "hook", SP_T_BOOL, "no" },
  /* target = rbd:POOL[/NAMESPACE]: the Ceph client's configuration and
   * identity; empty means librados's own defaults (docs/design.md). */
  [SP_KEY_CEPH_CONF] = { "ceph_conf", "defaults", SP_T_PATH, "", NULL, 0, 0, true },
  [SP_KEY_CEPH_USER] = { "ceph_user", "defaults", SP_T_STRING, "", NULL, 0, 0, true },
  [SP_KEY_CEPH_KEYRING] = { "ceph_keyring", "defaults", SP_T_PATH, "", NULL, 0, 0, true },
  [SP_KEY_CEPH_TIMEOUT_S] = { "ceph_timeout_s", "defaults", SP_T_INT, "60", NULL, 5, 3600 },
  [SP_KEY_STILLPOINT_BINARY] = { "stillpoint_binary", "hook", SP_T_PATH, "/usr/bin/stillpoint" },
};

/* inih's compiled-in line buffer (INI_MAX_LINE in Debian's build). */
enum { INI_LINE_MAX = 200 };

const struct sp_key_def *sp_config_key_def(enum sp_key k)
{
  return (unsigned)k < SP_KEY__COUNT ? &keys[k] : NULL;
}

int sp_config_key_lookup(const char *name)
{
  const char *dot = strchr(name, '.');
  for (int k = 0; k < SP_KEY__COUNT; k++) {
    if (dot) {
      size_t sl = (size_t)(dot - name);
      if (strlen(keys[k].section) == sl && strncmp(keys[k].section, name, sl) == 0 &&
          strcmp(keys[k].name, dot + 1) == 0)
        return k;
    } else if (strcmp(keys[k].name, name) == 0)
      return k;
  }
  return -1;
}

static bool parse_bool(const char *v, bool *out)
{
  static const char *const yes[] = { "yes", "true", "on", "1" };
  static const char *const no[] = { "no", "false", "off", "0" };
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(v, yes[i]) == 0)
      return *out = true, true;
    if (strcmp(v, no[i]) == 0)
      return *out = false, true;
  }
  return false;
}

static bool parse_long(const char *v, long *out)
{
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end)
    return false;
  *out = n;
  return true;
}

/* Checks one value against its key; "where" names file:line or --set. */
static int check_value(enum sp_key k, const char *v, const char *where, struct sp_err *e)
{
  const struct sp_key_def *d = &keys[k];
  if (!*v && !d->allow_empty)
    return sp_err_set(e, SP_EXIT_USAGE, "%s: key '%s' has an empty value", where, d->name);
  switch (d->type) {
  case SP_T_INT: {
    long n;
    for (const char *const *c = d->choices; c && *c; c++)
      if (strcmp(*c, v) == 0)
        return 0;
    if (!parse_long(v, &n) || n < d->min || n > d->max)
      return sp_err_set(e, SP_EXIT_USAGE,
                        "%s: key '%s': '%s' is not a number from %ld to %ld%s%s", where,
                        d->name, v, d->min, d->max, d->choices ? " or " : "",
                        d->choices ? d->choices[0] : "");
    return 0;
  }
  case SP_T_BOOL: {
    bool b;
    if (!parse_bool(v, &b))
      return sp_err_set(e, SP_EXIT_USAGE, "%s: key '%s': '%s' is not yes or no", where, d->name,
                        v);
    return 0;
  }
  case SP_T_ENUM:
    for (const char *const *c = d->choices; *c; c++)
      if (strcmp(*c, v) == 0)
        return 0;
    {
      char list[256] = "";
      for (const char *const *c = d->choices; *c; c++) {
        strncat(list, *c, sizeof list - strlen(list) - 2);
        if (c[1])
          strncat(list, "|", sizeof list - strlen(list) - 1);
      }
      return sp_err_set(e, SP_EXIT_USAGE, "%s: key '%s': '%s' is not one of %s", where, d->name,
                        v, list);
    }
  case SP_T_PATH:
    /* A Ceph pool is a target too; its names are checked where it is
     * opened (rbd_target.c). */
    if (k == SP_KEY_TARGET && strncmp(v, "rbd:", 4) == 0)
      return 0;
    if (*v && v[0] != '/')
      return sp_err_set(e, SP_EXIT_USAGE, "%s: key '%s': '%s' is not an absolute path", where,
                        d->name, v);
    return 0;
  case SP_T_STRING:
    return 0;
  }
  return 0;
}

static int store(struct sp_config *cfg, enum sp_key k, const char *v, const char *where,
                 struct sp_err *e)
{
  if (check_value(k, v, where, e) < 0)
    return -1;
  char *nv = sp_xstrdup(v), *ns = sp_xstrdup(where);
  free(cfg->value[k]);
  free(cfg->source[k]);
  cfg->value[k] = nv;
  cfg->source[k] = ns;
  return 0;
}

/* State of one file being parsed: the reader counts lines so that the
 * handler (which inih gives no line number) can name them. */
struct file_parse {
  struct sp_config *cfg;
  const char *path;
  const char *buf, *pos, *end;
  int line;
  bool seen[SP_KEY__COUNT];
  bool failed;
  struct sp_err *e;
};

static char *reader(char *str, int num, void *stream)
{
  struct file_parse *fp = stream;
  if (fp->failed || fp->pos >= fp->end)
    return NULL;
  const char *nl = memchr(fp->pos, '\n', (size_t)(fp->end - fp->pos));
  size_t len = nl ? (size_t)(nl - fp->pos) + 1 : (size_t)(fp->end - fp->pos);
  fp->line++;
  if (len > (size_t)num - 1) {
    fp->failed = true;
    sp_err_set(fp->e, SP_EXIT_USAGE, "%s:%d: line longer than %d characters", fp->path,
               fp->line, num - 2);
    return NULL;
  }
  memcpy(str, fp->pos, len);
  str[len] = '\0';
  fp->pos += len;
  /* inih does not report section headers, so an empty unknown section
   * would pass unseen: check headers here, at their own line. */
  const char *p = str + strspn(str, " \t");
  if (*p == '[') {
    size_t n = strcspn(p + 1, "]");
    if ((n != 8 || strncmp(p + 1, "defaults", 8) != 0) &&
        (n != 4 || strncmp(p + 1, "hook", 4) != 0)) {
      fp->failed = true;
      sp_err_set(fp->e, SP_EXIT_USAGE, "%s:%d: unknown section [%.*s] (known: [defaults], "
                 "[hook])", fp->path, fp->line, (int)n, p + 1);
      return NULL;
    }
  }
  return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
  struct file_parse *fp = user;
  char where[PATH_MAX + 32];
  snprintf(where, sizeof where, "%s:%d", fp->path, fp->line);
  if (fp->failed)
    return 0;
  /* Keys before any section header belong to [defaults]: a vm.d file may
   * then be a plain list of overrides. */
  const char *sec = *section ? section : "defaults";
  if (strcmp(sec, "defaults") != 0 && strcmp(sec, "hook") != 0) {
    fp->failed = true;
    sp_err_set(fp->e, SP_EXIT_USAGE, "%s: unknown section [%s] (known: [defaults], [hook])",
               where, sec);
    return 0;
  }
  int k = sp_config_key_lookup(name);
  if (k < 0 || strcmp(keys[k].section, sec) != 0) {
    fp->failed = true;
    if (k >= 0)
      sp_err_set(fp->e, SP_EXIT_USAGE, "%s: key '%s' belongs in section [%s], not [%s]", where,
                 name, keys[k].section, sec);
    else
      sp_err_set(fp->e, SP_EXIT_USAGE, "%s: unknown key '%s' in section [%s]", where, name, sec);
    return 0;
  }
  if (fp->seen[k]) {
    fp->failed = true;
    sp_err_set(fp->e, SP_EXIT_USAGE, "%s: key '%s' is set twice in this file", where, name);
    return 0;
  }
  fp->seen[k] = true;
  if (store(fp->cfg, k, value, where, fp->e) < 0) {
    fp->failed = true;
    return 0;
  }
  return 1;
}

int sp_config_apply_file(struct sp_config *cfg, const char *path, bool missing_ok,
                         struct sp_err *e)
{
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = sp_read_file(path, 1 << 20, &buf, &len, e);
  if (r < 0) {
    if (missing_ok && errno == ENOENT) {
      sp_err_clear(e);
      return 0;
    }
    e->code = SP_EXIT_USAGE;
    return -1;
  }
  if (memchr(buf, '\0', len))
    return sp_err_set(e, SP_EXIT_USAGE, "%s: binary data (NUL byte) in a configuration file",
                      path);

  struct file_parse fp = { .cfg = cfg, .path = path, .buf = buf, .pos = buf, .end = buf + len,
                           .e = e };
  int rc = ini_parse_stream(reader, &fp, handler, &fp);
  if (fp.failed)
    return -1;
  if (rc != 0)
    return sp_err_set(e, SP_EXIT_USAGE,
                      "%s:%d: not an INI line (expected [section] or key = value)", path,
                      rc > 0 ? rc : fp.line);
  return 0;
}

int sp_config_apply_set(struct sp_config *cfg, const char *assignment, struct sp_err *e)
{
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment)
    return sp_err_set(e, SP_EXIT_USAGE, "--set '%s': expected key=value", assignment);
  _cleanup_free_ char *name = sp_xstrndup(assignment, (size_t)(eq - assignment));
  int k = sp_config_key_lookup(name);
  if (k < 0)
    return sp_err_set(e, SP_EXIT_USAGE, "--set: unknown key '%s'", name);
  return store(cfg, k, eq + 1, "--set", e);
}

static bool valid_domain_file_name(const char *d)
{
  return *d && strcmp(d, ".") != 0 && strcmp(d, "..") != 0 && !strchr(d, '/');
}

int sp_config_load(struct sp_config *cfg, const struct sp_config_args *a, struct sp_err *e)
{
  memset(cfg, 0, sizeof *cfg);
  for (int k = 0; k < SP_KEY__COUNT; k++)
    if (store(cfg, k, keys[k].def, "built-in default", e) < 0)
      return -1;

  const char *dir = a->confdir ? a->confdir : getenv("STILLPOINT_CONFDIR");
  if (!dir || !*dir)
    dir = STILLPOINT_SYSCONFDIR;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/stillpoint.conf", dir);
  if (sp_config_apply_file(cfg, path, true, e) < 0)
    return -1;
  if (a->domain) {
    if (!valid_domain_file_name(a->domain))
      return sp_err_set(e, SP_EXIT_USAGE, "domain name '%s' cannot name a vm.d file", a->domain);
    snprintf(path, sizeof path, "%s/vm.d/%s.conf", dir, a->domain);
    if (sp_config_apply_file(cfg, path, true, e) < 0)
      return -1;
  }
  if (a->config_file && sp_config_apply_file(cfg, a->config_file, false, e) < 0)
    return -1;
  for (size_t i = 0; i < a->nsets; i++)
    if (sp_config_apply_set(cfg, a->sets[i], e) < 0)
      return -1;
  /* The one rule between keys: checked once every layer is applied, since
   * a vm.d file or --set may move either end of the range. */
  if (sp_config_int(cfg, SP_KEY_NBD_PORT_MIN) > sp_config_int(cfg, SP_KEY_NBD_PORT_MAX))
    return sp_err_set(e, SP_EXIT_USAGE, "nbd_port_min = %ld (%s) is above nbd_port_max = %ld "
                      "(%s): the range of NBD ports is empty", sp_config_int(cfg,
                      SP_KEY_NBD_PORT_MIN), cfg->source[SP_KEY_NBD_PORT_MIN],
                      sp_config_int(cfg, SP_KEY_NBD_PORT_MAX), cfg->source[SP_KEY_NBD_PORT_MAX]);
  return 0;
}

void sp_config_free(struct sp_config *cfg)
{
  for (int k = 0; k < SP_KEY__COUNT; k++) {
    free(cfg->value[k]);
    free(cfg->source[k]);
    cfg->value[k] = cfg->source[k] = NULL;
  }
}

const char *sp_config_str(const struct sp_config *c, enum sp_key k)
{
  return c->value[k] ? c->value[k] : keys[k].def;
}

long sp_config_int(const struct sp_config *c, enum sp_key k)
{
  long n = 0;
  /* Validated when stored; a key's word (parallel = auto) reads 0. */
  parse_long(sp_config_str(c, k), &n);
  return n;
}

bool sp_config_bool(const struct sp_config *c, enum sp_key k)
{
  bool b = false;
  parse_bool(sp_config_str(c, k), &b);
  return b;
}

bool sp_config_is(const struct sp_config *c, enum sp_key k, const char *choice)
{
  /* A choice the key's table does not have is a typo in the caller, which
   * would otherwise read as "not chosen" forever: stop at the first use. */
  bool known = false;
  for (const char *const *ch = keys[k].choices; ch && *ch && !known; ch++)
    known = strcmp(*ch, choice) == 0;
  if (!known) {
    fprintf(stderr, "stillpoint: internal error: %s has no choice '%s'\n", keys[k].name, choice);
    abort();
  }
  return strcmp(sp_config_str(c, k), choice) == 0;
}
