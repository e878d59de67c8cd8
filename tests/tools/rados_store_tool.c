/* sp-rados-store: drives the RADOS point store (ceph/rados_points.h)
 * from the end-to-end tests (tests/e2e/test_rados_points.py), before the
 * coordinator uses it.  One process holds one store (and its lock) for a
 * script read from stdin, one command a line:
 *
 *   lock HOLDER...   renew   unlock   register DOMAIN
 *   intend ID ITEM   put ID PATH FILE   commit ID   uncommit ID ITEM...
 *   list   manifest ID   get ID PATH   cleanup   sleep SECONDS
 *
 * Each prints its result on stdout; the first failure prints
 * "error: MESSAGE" and exits 1.  Not installed. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ceph_client.h"
#include "cleanup.h"
#include "rados_points.h"
#include "sha256.h"

#define MAX_ARGS 64

static int read_file(const char *path, char **data, size_t *len, struct sp_err *e)
{
  _cleanup_fclose_ FILE *f = fopen(path, "rb");
  if (!f)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", path);
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  do {
    if (n == cap) {
      cap = cap ? 2 * cap : 65536;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "%s", path);
      }
      buf = nb;
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
  } while (got);
  *data = buf;
  *len = n;
  return 0;
}

static int command(struct sp_rados_store *s, int argc, char **argv, struct sp_err *e)
{
  const char *c = argv[0];
  if (!strcmp(c, "lock") && argc >= 2) {
    char holder[SP_RADOS_HOLDER_MAX + 1] = "";
    for (int i = 1; i < argc; i++) {
      if (strlen(holder) + strlen(argv[i]) + 2 > sizeof holder)
        return sp_err_set(e, SP_EXIT_USAGE, "holder too long");
      if (i > 1)
        strcat(holder, " ");
      strcat(holder, argv[i]);
    }
    return sp_rados_lock(s, holder, e);
  }
  if (!strcmp(c, "renew") && argc == 1)
    return sp_rados_lock_renew(s, e);
  if (!strcmp(c, "unlock") && argc == 1)
    return sp_rados_unlock(s, e);
  if (!strcmp(c, "register") && argc == 2)
    return sp_rados_register(s, argv[1], e);
  if (!strcmp(c, "intend") && argc == 3)
    return sp_rados_intend(s, argv[1], (const char *const *)&argv[2], 1, e);
  if (!strcmp(c, "put") && argc == 4) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (read_file(argv[3], &data, &len, e) < 0)
      return -1;
    return sp_rados_put(s, argv[1], argv[2], data, len, e);
  }
  if (!strcmp(c, "commit") && argc == 2) {
    /* The record of what was written: the manifest object read back. */
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct sp_commit_record rec = { 0 };
    if (sp_rados_get(s, argv[1], "manifest.json", &data, &len, e) < 0 ||
        sp_sha256_hex(data, len, rec.sha256) < 0)
      return -1;
    rec.size = len;
    return sp_rados_commit(s, argv[1], &rec, e);
  }
  if (!strcmp(c, "uncommit") && argc >= 2)
    return sp_rados_uncommit(s, argv[1], (const char *const *)&argv[2], (size_t)argc - 2, e);
  if (!strcmp(c, "list") && argc == 1) {
    struct sp_rados_listing l;
    if (sp_rados_list(s, &l, e) < 0)
      return -1;
    for (size_t i = 0; i < l.n; i++)
      printf("point %s %s %llu\n", l.points[i].id, l.points[i].rec.sha256,
             (unsigned long long)l.points[i].rec.size);
    for (size_t i = 0; i < l.npending; i++)
      printf("pending %s\n", l.pending[i]);
    sp_rados_listing_free(&l);
    return 0;
  }
  if (!strcmp(c, "manifest") && argc == 2) {
    struct sp_rados_listing l;
    if (sp_rados_list(s, &l, e) < 0)
      return -1;
    int rc = sp_err_set(e, SP_EXIT_FAILED, "no point %s", argv[1]);
    for (size_t i = 0; i < l.n; i++)
      if (!strcmp(l.points[i].id, argv[1])) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sp_err_clear(e);
        rc = sp_rados_get_manifest(s, &l.points[i], &data, &len, e);
        if (rc == 0)
          fwrite(data, 1, len, stdout);
      }
    sp_rados_listing_free(&l);
    return rc;
  }
  if (!strcmp(c, "get") && argc == 3) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (sp_rados_get(s, argv[1], argv[2], &data, &len, e) < 0)
      return -1;
    fwrite(data, 1, len, stdout);
    return 0;
  }
  if (!strcmp(c, "cleanup") && argc == 1) {
    size_t n;
    _cleanup_(sp_strv_free) struct sp_strv kept = SP_STRV_INIT;
    if (sp_rados_cleanup(s, &n, &kept, e) < 0)
      return -1;
    printf("removed %zu\n", n);
    if (kept.n)
      printf("kept %zu\n", kept.n);
    return 0;
  }
  if (!strcmp(c, "sleep") && argc == 2) {
    sleep((unsigned)atoi(argv[1]));
    return 0;
  }
  return sp_err_set(e, SP_EXIT_USAGE, "unknown command or arguments: %s", c);
}

int main(int argc, char *argv[])
{
  struct sp_ceph_opts o = { 0 };
  const char *pool = NULL, *ns = NULL, *uuid = NULL;
  static const struct option opts[] = {
    { "conf", required_argument, NULL, 'c' }, { "user", required_argument, NULL, 'u' },
    { "keyring", required_argument, NULL, 'k' }, { "pool", required_argument, NULL, 'p' },
    { "ns", required_argument, NULL, 'n' }, { "uuid", required_argument, NULL, 'U' },
    { "timeout", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 },
  };
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'c': o.conf = optarg; break;
    case 'u': o.user = optarg; break;
    case 'k': o.keyring = optarg; break;
    case 'p': pool = optarg; break;
    case 'n': ns = optarg; break;
    case 'U': uuid = optarg; break;
    case 't': o.timeout_s = (unsigned)atoi(optarg); break;
    default: return 2;
    }
  }
  if (!pool || !uuid) {
    fprintf(stderr, "usage: sp-rados-store --pool P [--ns N] --uuid U [--conf --user "
                    "--keyring --timeout] < script\n");
    return 2;
  }
  struct sp_err e = { 0 };
  rados_t cluster = NULL;
  struct sp_rados_store s = { 0 };
  int rc = sp_ceph_connect(&o, &cluster, &e);
  if (rc == 0)
    rc = sp_rados_store_open(cluster, pool, ns, uuid, &s, &e);
  char line[8192];
  while (rc == 0 && fgets(line, sizeof line, stdin)) {
    char *args[MAX_ARGS];
    int n = 0;
    for (char *tok = strtok(line, " \t\n"); tok && n < MAX_ARGS; tok = strtok(NULL, " \t\n"))
      args[n++] = tok;
    if (n == 0)
      continue;
    rc = command(&s, n, args, &e);
    if (rc == 0)
      printf("ok %s\n", args[0]);
    fflush(stdout);
  }
  if (rc < 0)
    printf("error: %s\n", e.msg);
  sp_rados_store_close(&s);
  if (cluster)
    rados_shutdown(cluster);
  return rc < 0 ? 1 : 0;
}
