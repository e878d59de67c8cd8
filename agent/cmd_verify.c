/* stillpoint verify POINT_DIR: is this point whole and usable?  SHA256SUMS,
 * the manifest and what it references, each qcow2 (qemu-img check) and
 * its chain down to the full, and the TPM state loaded by a real swtpm.
 * Every problem is named with its file; exit 1 when there is one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
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
#include "image_check.h"
#include "manifest.h"
#include "point_chain.h"
#include "point_layout.h"
#include "rbd_point.h"
#include "sha256.h"
#include "strv.h"
#include "tpm_probe.h"
#include "xalloc.h"

static const char usage[] =
  "usage: stillpoint verify POINT_DIR|rbd:POOL[/NAMESPACE]/UUID@ID [--json]\n"
  "                         [--config FILE] [--set key=value]\n"
  "Checks SHA256SUMS, the manifest, each disk image and its chain (for a Ceph\n"
  "point: each disk's snapshot and its size), and that swtpm loads the TPM state.\n"
  "Exit 0 when all is well, 1 naming each bad file.\n";

struct problem {
  char *file;
  char *what;
};

struct verify {
  struct sp_point pt;
  struct sp_sums sums;
  struct problem *p;
  size_t np;
  int checks;
  struct sp_strv notes;
};

/* Never fails (xalloc.h): a problem that could not be recorded would let
 * verify say OK. */
static void bad(struct verify *v, const char *file, const char *what)
{
  v->p = sp_xreallocarray(v->p, v->np + 1, sizeof *v->p);
  v->p[v->np].file = sp_xstrdup(file);
  v->p[v->np].what = sp_xstrdup(what);
  v->np++;
}

static void note(struct verify *v, const char *what)
{
  sp_strv_push(&v->notes, what);
}

/* Regular files of the point that SHA256SUMS does not list, walked
 * through descriptors (the scan refuses symlinks; none is followed here). */
static void unlisted(struct verify *v, int dfd, const char *rel, int depth)
{
  int fd = dup(dfd);
  _cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    _cleanup_free_ char *r = NULL;
    if (asprintf(&r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0)
      return;
    struct stat st;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR(st.st_mode) && depth < 8) {
      _cleanup_close_ int sub =
        openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0)
        unlisted(v, sub, r, depth + 1);
    } else if (S_ISREG(st.st_mode) && strcmp(r, "SHA256SUMS") != 0 &&
               !sp_sums_find(&v->sums, r)) {
      bad(v, r, "not listed in SHA256SUMS");
    }
  }
}

/* Every file SHA256SUMS lists, opened below the point (no symlink, no
 * FIFO, one link) and hashed. */
static void check_sums(struct verify *v)
{
  struct sp_err e = { 0 };
  if (sp_sums_load_at(v->pt.fd, &v->sums, &e) < 0) {
    bad(v, "SHA256SUMS", e.msg);
    return;
  }
  for (size_t i = 0; i < v->sums.n; i++) {
    const struct sp_sum *s = &v->sums.v[i];
    sp_err_clear(&e);
    struct stat st;
    _cleanup_close_ int fd = -1;
    char hex[SP_SHA256_HEX_LEN + 1];
    v->checks++;
    if (fstatat(v->pt.fd, s->path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
      bad(v, s->path, "missing");
    else if ((fd = sp_open_regular_at(v->pt.fd, s->path, &st, &e)) < 0 ||
             sp_sha256_fd(fd, hex, &e) < 0)
      bad(v, s->path, e.msg);
    else if (strcmp(hex, s->sha256) != 0)
      bad(v, s->path, "content differs from its SHA-256 in SHA256SUMS");
  }
  unlisted(v, v->pt.fd, "", 0);
}

static void check_state_files(struct verify *v, const struct sp_manifest_state *st,
                              const char *dir)
{
  for (size_t i = 0; i < st->nfiles; i++) {
    _cleanup_free_ char *rel = NULL;
    if (asprintf(&rel, "%s/%s", dir, st->files[i].name) < 0)
      return;
    struct sp_err e = { 0 };
    struct stat sb;
    _cleanup_close_ int fd = sp_open_regular_at(v->pt.fd, rel, &sb, &e);
    char hex[SP_SHA256_HEX_LEN + 1];
    v->checks++;
    if (fd < 0 || sp_sha256_fd(fd, hex, &e) < 0)
      bad(v, rel, e.msg[0] ? e.msg : "missing or unreadable");
    else if (strcmp(hex, st->files[i].sha256) != 0)
      bad(v, rel, "content differs from its SHA-256 in the manifest");
  }
}

/* qemu-img check of the point's own image, handed over as the descriptor
 * we checked, its format and no backing (image_check.h). */
static void qemu_img_check(struct verify *v, const struct sp_manifest_disk *d,
                           const struct sp_chain_link *top)
{
  if (strcmp(top->format, "qcow2") != 0)
    return; /* raw data: nothing for qemu-img to check */
  const struct sp_image_layer layer = { "qcow2", 3 };
  _cleanup_free_ char *json = sp_image_json(&layer, 1);
  char *argv[] = { "qemu-img", "check", "-q", json, NULL };
  struct sp_run_result r;
  struct sp_err e = { 0 };
  v->checks++;
  if (!json || sp_run_fds(argv, &top->fd, 1, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r,
                          &e) < 0) {
    bad(v, d->file, json ? e.msg : "out of memory");
    return;
  }
  if (r.status != 0) {
    const char *msg = r.err && r.err[0] ? r.err : r.out ? r.out : "";
    char what[600];
    snprintf(what, sizeof what, "qemu-img check: %.*s", (int)strcspn(msg, "\n"), msg);
    bad(v, d->file, what);
  }
  sp_run_result_free(&r);
}

static void check_disks(struct verify *v, const struct sp_manifest *m)
{
  for (size_t i = 0; i < m->ndisks; i++) {
    const struct sp_manifest_disk *d = &m->disks[i];
    struct sp_disk_chain c;
    struct sp_err e = { 0 };
    v->checks++;
    if (sp_disk_chain_resolve(v->pt.domain_fd, v->pt.fd, m, &v->sums, d->target, &c, &e) < 0)
      bad(v, d->file, e.msg);
    else
      qemu_img_check(v, d, &c.links[0]);
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
  struct sp_tree t;
  struct sp_err e = { 0 };
  v->checks++;
  if (sp_tree_read_at(v->pt.fd, m->tpm.path, &t, &e) < 0) {
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
  if (sp_manifest_load_at(v->pt.fd, v->pt.path, &m, &e) < 0) {
    bad(v, "manifest.json", e.msg);
    return;
  }
  const char *base = v->pt.name;
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

/* A Ceph point: the commit record and SHA256SUMS (rbd_point_open; a
 * point that fails there is refused, exit 3), every object SHA256SUMS
 * lists, the state files against the manifest, each disk's snapshot and
 * its size, and the TPM state in a real swtpm.  Objects SHA256SUMS does
 * not list cannot be named: finding them would list the whole pool. */
static int verify_rbd(struct verify *v, const struct cli *c, struct sp_err *e)
{
  struct sp_config cfg = { 0 };
  struct rbd_point p = { 0 };
  int rc = cli_load_config(c, NULL, &cfg, e);
  if (rc == 0)
    rc = rbd_point_open(&p, &cfg, c->args[0], &c->log, e);
  snprintf(v->pt.path, sizeof v->pt.path, "%s", c->args[0]);
  for (size_t i = 0; rc == 0 && i < p.sums.n; i++) {
    char *data = NULL;
    size_t len;
    struct sp_err pe = { 0 };
    v->checks++;
    if (rbd_point_read(&p, p.sums.v[i].path, &data, &len, &pe) < 0)
      bad(v, p.sums.v[i].path, pe.msg);
    free(data);
  }
  if (rc == 0 && p.m.nvram.present) {
    struct sp_blob b = { 0 };
    struct sp_err pe = { 0 };
    v->checks++;
    if (rbd_point_nvram(&p, &b, &pe) < 0)
      bad(v, p.m.nvram.path, pe.msg);
    sp_blob_free(&b);
  }
  for (size_t i = 0; rc == 0 && i < p.m.ndisks; i++) {
    struct sp_err pe = { 0 };
    v->checks++;
    if (rbd_point_snap_check(&p, &p.m.disks[i], &pe) < 0)
      bad(v, p.m.disks[i].rbd_image, pe.msg);
  }
  if (rc == 0 && p.m.tpm.present && p.m.tpm.secret_uuid)
    note(v, "TPM state is encrypted: swtpm cannot load it without libvirt's secret; not "
            "probed");
  else if (rc == 0 && p.m.tpm.present) {
    struct sp_tree t = { 0 };
    struct sp_err pe = { 0 };
    v->checks++;
    if (rbd_point_tpm(&p, &t, &pe) < 0 || tpm_probe(&t, p.m.tpm.version, &pe) < 0)
      bad(v, p.m.tpm.path, pe.msg);
    sp_tree_free(&t);
  }
  rbd_point_close(&p);
  sp_config_free(&cfg);
  return rc;
}

static void print(const struct cli *c, const struct verify *v)
{
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "point", json_object_new_string(v->pt.path));
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
    for (size_t i = 0; i < v->notes.n; i++)
      json_object_array_add(n, json_object_new_string(v->notes.v[i]));
    json_object_object_add(o, "notes", n);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return;
  }
  for (size_t i = 0; i < v->np; i++)
    printf("BAD   %s: %s\n", v->p[i].file, v->p[i].what);
  for (size_t i = 0; i < v->notes.n; i++)
    printf("note  %s\n", v->notes.v[i]);
  printf("%s  %s (%d checks, %zu problem%s)\n", v->np ? "FAILED" : "OK", v->pt.path, v->checks,
         v->np, v->np == 1 ? "" : "s");
}

int cmd_verify(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct verify v = { .pt = SP_POINT_INIT };
  int rc;
  if (cli_parse(&c, argc, argv, NULL, NULL, NULL, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "verify needs one POINT_DIR\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (rbd_point_is(c.args[0])) {
    if (verify_rbd(&v, &c, &e) < 0) {
      rc = cli_fail(&c, &e);
      goto out;
    }
    print(&c, &v);
    rc = v.np ? SP_EXIT_FAILED : SP_EXIT_OK;
    goto out;
  }
  /* A point whose directories others can write is refused (exit 3): what
   * verify checked could be swapped before it is used (trust.h). */
  if (sp_point_open(c.args[0], &v.pt, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (sp_point_scan(v.pt.fd, v.pt.path, &e) < 0)
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
  sp_strv_free(&v.notes);
  sp_sums_free(&v.sums);
  sp_point_close(&v.pt);
  cli_free(&c);
  return rc;
}
