/* stillpoint verify POINT_DIR: is this point whole and usable?  SHA256SUMS,
 * the manifest and what it references, each qcow2 (qemu-img check) and
 * its chain down to the full, and the TPM state loaded by a real swtpm.
 * Every problem is named with its file; exit 1 when there is one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "fsutil.h"
#include "manifest.h"
#include "point_chain.h"
#include "point_layout.h"
#include "sha256.h"
#include "tpm_probe.h"

static const char usage[] =
  "usage: stillpoint verify POINT_DIR [--json]\n"
  "Checks SHA256SUMS, the manifest, each disk image and its chain, and that swtpm\n"
  "loads the TPM state. Exit 0 when all is well, 1 naming each bad file.\n";

struct problem {
  char *file;
  char *what;
};

struct verify {
  char point[PATH_MAX];
  int fd;
  struct problem *p;
  size_t np;
  int checks;
  char **notes;
  size_t nnotes;
};

static void bad(struct verify *v, const char *file, const char *what)
{
  struct problem *np = realloc(v->p, (v->np + 1) * sizeof *np);
  if (!np)
    return;
  v->p = np;
  np[v->np].file = strdup(file);
  np[v->np].what = strdup(what);
  v->np++;
}

static void note(struct verify *v, const char *what)
{
  char **nn = realloc(v->notes, (v->nnotes + 1) * sizeof *nn);
  if (!nn)
    return;
  v->notes = nn;
  nn[v->nnotes++] = strdup(what);
}

static bool listed(const struct sp_sums *s, const char *rel)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].path, rel) == 0)
      return true;
  return false;
}

/* Regular files of the point that SHA256SUMS does not list. */
static void unlisted(struct verify *v, const struct sp_sums *s, const char *rel)
{
  _cleanup_free_ char *abs = rel[0] ? sp_path_join(v->point, rel) : strdup(v->point);
  _cleanup_closedir_ DIR *d = abs ? opendir(abs) : NULL;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    _cleanup_free_ char *r = NULL;
    if (asprintf(&r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0)
      return;
    _cleanup_free_ char *p = sp_path_join(v->point, r);
    struct stat st;
    if (!p || lstat(p, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode))
      unlisted(v, s, r);
    else if (S_ISREG(st.st_mode) && strcmp(r, "SHA256SUMS") != 0 && !listed(s, r))
      bad(v, r, "not listed in SHA256SUMS");
  }
}

static void check_sums(struct verify *v)
{
  _cleanup_free_ char *path = sp_path_join(v->point, "SHA256SUMS");
  _cleanup_free_ char *text = NULL;
  size_t len;
  struct sp_err e = { 0 };
  struct sp_sums s = { 0 };
  if (!path || sp_read_file(path, 1 << 20, &text, &len, &e) < 0) {
    bad(v, "SHA256SUMS", "missing or unreadable");
    return;
  }
  if (sp_sums_parse(text, len, &s, &e) < 0) {
    bad(v, "SHA256SUMS", e.msg);
    return;
  }
  for (size_t i = 0; i < s.n; i++) {
    sp_err_clear(&e);
    _cleanup_close_ int fd = sp_open_beneath(v->fd, s.v[i].path, O_RDONLY, 0, &e);
    char hex[SP_SHA256_HEX_LEN + 1];
    v->checks++;
    if (fd < 0)
      bad(v, s.v[i].path, errno == ENOENT ? "missing" : e.msg);
    else if (sp_sha256_fd(fd, hex, &e) < 0)
      bad(v, s.v[i].path, e.msg);
    else if (strcmp(hex, s.v[i].sha256) != 0)
      bad(v, s.v[i].path, "content differs from its SHA-256 in SHA256SUMS");
  }
  unlisted(v, &s, "");
  sp_sums_free(&s);
}

static void check_state_files(struct verify *v, const struct sp_manifest_state *st,
                              const char *dir)
{
  for (size_t i = 0; i < st->nfiles; i++) {
    _cleanup_free_ char *rel = NULL;
    if (asprintf(&rel, "%s/%s", dir, st->files[i].name) < 0)
      return;
    struct sp_err e = { 0 };
    _cleanup_close_ int fd = sp_open_beneath(v->fd, rel, O_RDONLY, 0, &e);
    char hex[SP_SHA256_HEX_LEN + 1];
    v->checks++;
    if (fd < 0 || sp_sha256_fd(fd, hex, &e) < 0)
      bad(v, rel, "missing or unreadable");
    else if (strcmp(hex, st->files[i].sha256) != 0)
      bad(v, rel, "content differs from its SHA-256 in the manifest");
  }
}

static void check_disks(struct verify *v, const struct sp_manifest *m)
{
  for (size_t i = 0; i < m->ndisks; i++) {
    const struct sp_manifest_disk *d = &m->disks[i];
    _cleanup_free_ char *img = sp_path_join(v->point, d->file);
    v->checks++;
    if (!img || !sp_exists(img)) {
      bad(v, d->file, "missing");
      continue;
    }
    char *argv[] = { "qemu-img", "check", "-q", img, NULL };
    struct sp_run_result r;
    struct sp_err e = { 0 };
    if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r, &e) == 0) {
      /* 63: a raw image (from a copier like nbdcopy) has nothing to check. */
      if (r.status != 0 && r.status != 63) {
        const char *msg = r.err && r.err[0] ? r.err : r.out ? r.out : "";
        char what[600];
        snprintf(what, sizeof what, "qemu-img check: %.*s", (int)strcspn(msg, "\n"), msg);
        bad(v, d->file, what);
      }
      sp_run_result_free(&r);
    }
    struct sp_disk_chain c;
    sp_err_clear(&e);
    v->checks++;
    if (sp_disk_chain_resolve(v->point, m, d->target, &c, &e) < 0)
      bad(v, d->file, e.msg);
    else if (strcmp(c.links[c.n - 1].level, "full") != 0)
      bad(v, d->file, "its chain does not end at a full image");
    sp_disk_chain_free(&c);
  }
}

static void check_tpm(struct verify *v, const struct sp_manifest *m)
{
  if (!m->tpm.present)
    return;
  if (m->tpm.secret_uuid) {
    note(v, "TPM state is encrypted: swtpm cannot load it without libvirt's secret; not "
            "probed");
    return;
  }
  _cleanup_free_ char *dir = sp_path_join(v->point, m->tpm.path);
  struct sp_tree t;
  bool temp;
  struct sp_err e = { 0 };
  v->checks++;
  if (!dir || sp_tree_read(dir, &t, &temp, &e) < 0) {
    bad(v, m->tpm.path, e.msg);
    return;
  }
  if (tpm_probe(&t, m->tpm.version, &e) < 0)
    bad(v, m->tpm.path, e.msg);
  sp_tree_free(&t);
}

static void check_manifest(struct verify *v)
{
  struct sp_manifest m;
  struct sp_err e = { 0 };
  v->checks++;
  if (sp_manifest_load(v->point, &m, &e) < 0) {
    bad(v, "manifest.json", e.msg);
    return;
  }
  char copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", v->point);
  const char *base = basename(copy);
  size_t bl = strlen(base), sl = strlen(SP_PARTIAL_SUFFIX);
  bool partial = bl > sl && strcmp(base + bl - sl, SP_PARTIAL_SUFFIX) == 0;
  if (strncmp(base, m.id, strlen(m.id)) != 0 || strlen(m.id) != bl - (partial ? sl : 0))
    bad(v, "manifest.json", "names another point id than this directory");
  if (partial)
    bad(v, ".", "an incomplete point (.partial): its copy did not finish");
  if (m.nvram.present)
    check_state_files(v, &m.nvram, "nvram");
  if (m.tpm.present)
    check_state_files(v, &m.tpm, m.tpm.path);
  check_disks(v, &m);
  check_tpm(v, &m);
  sp_manifest_free(&m);
}

static void print(const struct cli *c, const struct verify *v)
{
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "point", json_object_new_string(v->point));
    json_object_object_add(o, "ok", json_object_new_boolean(v->np == 0));
    json_object_object_add(o, "checks", json_object_new_int(v->checks));
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < v->np; i++) {
      json_object *p = json_object_new_object();
      json_object_object_add(p, "file", json_object_new_string(v->p[i].file));
      json_object_object_add(p, "problem", json_object_new_string(v->p[i].what));
      json_object_array_add(a, p);
    }
    json_object_object_add(o, "problems", a);
    json_object *n = json_object_new_array();
    for (size_t i = 0; i < v->nnotes; i++)
      json_object_array_add(n, json_object_new_string(v->notes[i]));
    json_object_object_add(o, "notes", n);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return;
  }
  for (size_t i = 0; i < v->np; i++)
    printf("BAD   %s: %s\n", v->p[i].file, v->p[i].what);
  for (size_t i = 0; i < v->nnotes; i++)
    printf("note  %s\n", v->notes[i]);
  printf("%s  %s (%d checks, %zu problem%s)\n", v->np ? "FAILED" : "OK", v->point, v->checks,
         v->np, v->np == 1 ? "" : "s");
}

int cmd_verify(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct verify v = { .fd = -1 };
  int rc;
  if (cli_parse(&c, argc, argv, NULL, NULL, NULL, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "verify needs one POINT_DIR\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (!realpath(c.args[0], v.point) ||
      (v.fd = open(v.point, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    sp_err_sys(&e, SP_EXIT_FAILED, errno, "%s", c.args[0]);
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (sp_point_scan(v.point, &e) < 0)
    bad(&v, ".", e.msg);
  check_sums(&v);
  check_manifest(&v);
  print(&c, &v);
  rc = v.np ? SP_EXIT_FAILED : SP_EXIT_OK;
out:
  for (size_t i = 0; i < v.np; i++) {
    free(v.p[i].file);
    free(v.p[i].what);
  }
  free(v.p);
  for (size_t i = 0; i < v.nnotes; i++)
    free(v.notes[i]);
  free(v.notes);
  if (v.fd >= 0)
    close(v.fd);
  cli_free(&c);
  return rc;
}
