/* stillpoint inspect POINT [--against POINT2 | --domain DOMAIN]: will this
 * VM boot and unseal as before?  Shows what a point's NVRAM (Secure Boot
 * state and keys, boot entries, variables) and TPM (NV indexes, persistent
 * keys, PCR banks) hold, or what differs between it and another point or a
 * VM's current state.  Nothing is written: the NVRAM is parsed in memory,
 * the TPM state is read by a private swtpm on a throw-away copy. */
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

#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "domain_xml.h"
#include "fsutil.h"
#include "inspect_diff.h"
#include "inspect_output.h"
#include "manifest.h"
#include "nvram_info.h"
#include "point_chain.h"
#include "rbd_point.h"
#include "state_capture.h"
#include "state_locator.h"
#include "tpm_query.h"
#include "virt.h"
#include "xalloc.h"

static const char usage[] =
  "usage: stillpoint inspect POINT [--against POINT2 | --domain DOMAIN] [--json]\n"
  "       stillpoint inspect --domain DOMAIN [--json]\n"
  "POINT is a point directory or a Ceph point, rbd:POOL[/NAMESPACE]/UUID@ID.\n"
  "Shows what a point's NVRAM and TPM state hold: Secure Boot state and keys, boot\n"
  "entries, variables, TPM NV indexes, persistent keys, PCR banks. With --against or\n"
  "--domain, shows what differs from another point or from the VM's current state.\n";

enum { OPT_AGAINST = 0x2400, OPT_DOMAIN };

struct inspect_opts {
  const char *against, *domain;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct inspect_opts *o = user;
  switch (opt) {
  case OPT_AGAINST: o->against = arg; break;
  case OPT_DOMAIN: o->domain = arg; break;
  default: return sp_err_set(e, SP_EXIT_USAGE, "unexpected option");
  }
  return 0;
}

/* One side: a point or a VM, with what could be read of it. */
struct source {
  char kind[8];            /* "point" | "domain" */
  char *path;              /* point directory, or the domain name */
  char *id, *domain, *created;
  bool has_nvram, has_tpm; /* the point or VM has one */
  bool nvram_ok, tpm_ok;   /* and it was read */
  struct nvram_info nvram;
  struct tpm_info tpm;
  char *nvram_error, *tpm_error;
  char *nvram_file;        /* where it came from */
  char *tpm_dir;
};

static void source_free(struct source *s)
{
  if (s->nvram_ok)
    nvram_info_free(&s->nvram);
  if (s->tpm_ok)
    tpm_info_free(&s->tpm);
  free(s->path);
  free(s->id);
  free(s->domain);
  free(s->created);
  free(s->nvram_error);
  free(s->tpm_error);
  free(s->nvram_file);
  free(s->tpm_dir);
}

/* Parses NVRAM bytes (taking them over) into s. */
static void load_nvram(struct source *s, struct sp_blob *b, const char *expect_sha256)
{
  struct sp_err e = { 0 };
  if (expect_sha256 && strcmp(b->sha256, expect_sha256) != 0) {
    sp_blob_free(b);
    s->nvram_error = sp_xstrdup("the NVRAM file does not match its SHA-256 in the manifest: "
                                "the point is damaged (stillpoint verify names what else is)");
    return;
  }
  uint8_t *img = b->data;
  size_t len = b->len;
  if (b->mapped) { /* nvram_info owns a malloc'd image */
    img = sp_xmalloc(len ? len : 1);
    memcpy(img, b->data, len);
  } else {
    b->data = NULL;
  }
  sp_blob_free(b);
  if (nvram_info_parse(img, len, &s->nvram, &e) < 0)
    s->nvram_error = sp_xstrdup(e.msg);
  else
    s->nvram_ok = true;
}

static void load_tpm(struct source *s, const struct sp_tree *t, const char *version)
{
  struct sp_err e = { 0 };
  if (tpm_query(t, version, &s->tpm, &e) < 0) {
    tpm_info_free(&s->tpm);
    s->tpm_error = sp_xstrdup(e.msg);
  } else {
    s->tpm_ok = true;
  }
}

/* A point is untrusted input (docs/design.md, "Threat model"): opened
 * below a trusted directory, its state files read through descriptors. */
static int load_point(struct source *s, const char *arg, struct sp_err *e)
{
  snprintf(s->kind, sizeof s->kind, "point");
  struct sp_point pt;
  struct sp_manifest m = { 0 };
  if (sp_point_open(arg, &pt, e) < 0 || sp_point_scan(pt.fd, pt.path, e) < 0 ||
      sp_manifest_load_at(pt.fd, pt.path, &m, e) < 0) {
    sp_point_close(&pt);
    return -1;
  }
  s->path = sp_xstrdup(pt.path);
  s->id = sp_xstrdup(m.id);
  s->domain = sp_xstrdup(m.domain);
  s->created = m.created ? sp_xstrdup(m.created) : NULL;
  if ((s->has_nvram = m.nvram.present)) {
    s->nvram_file = sp_path_join(pt.path, m.nvram.path);
    struct sp_blob b;
    struct stat st;
    struct sp_err le = { 0 };
    _cleanup_close_ int fd = sp_open_regular_at(pt.fd, m.nvram.path, &st, &le);
    if (fd < 0 || sp_blob_read_fd(fd, m.nvram.files[0].name, &b, &le) < 0)
      s->nvram_error = sp_xstrdup(le.msg);
    else
      load_nvram(s, &b, m.nvram.nfiles ? m.nvram.files[0].sha256 : NULL);
  }
  if ((s->has_tpm = m.tpm.present)) {
    s->tpm_dir = sp_path_join(pt.path, m.tpm.path);
    struct sp_tree t;
    struct sp_err le = { 0 };
    if (m.tpm.secret_uuid)
      s->tpm_error = sp_xstrdup("the TPM state is encrypted (libvirt secret): swtpm cannot "
                                "read it without the secret");
    else if (sp_tree_read_at(pt.fd, m.tpm.path, &t, &le) < 0)
      s->tpm_error = sp_xstrdup(le.msg);
    else {
      load_tpm(s, &t, m.tpm.version ? m.tpm.version : "2.0");
      sp_tree_free(&t);
    }
  }
  sp_manifest_free(&m);
  sp_point_close(&pt);
  return 0;
}

/* The VM's current NVRAM and TPM state on this machine; a running VM's
 * are read until two reads agree (as a backup does). */
static int load_domain(struct source *s, const struct cli *c, const char *name,
                       struct sp_err *e)
{
  snprintf(s->kind, sizeof s->kind, "domain");
  if (c->uri && strncmp(c->uri, "qemu:///", 8) != 0)
    return sp_err_set(e, SP_EXIT_USAGE, "inspect --domain reads the VM's files on this "
                      "machine: run it on the hypervisor (-c %s is not local)", c->uri);
  _cleanup_conn_ virConnectPtr conn = NULL;
  _cleanup_dom_ virDomainPtr dom = NULL;
  _cleanup_free_ char *xml = NULL;
  struct sp_domain d = { 0 };
  if (virt_open(c->uri, &conn, e) < 0 || virt_lookup(conn, name, &dom, e) < 0 ||
      virt_xml(dom, 0, &xml, e) < 0 || sp_domain_parse(xml, strlen(xml), &d, e) < 0)
    return -1;
  s->path = sp_xstrdup(name);
  s->domain = sp_xstrdup(name);
  if (d.nvram.type == SP_NVRAM_FILE || d.nvram.type == SP_NVRAM_BLOCK) {
    s->has_nvram = true;
    s->nvram_file = sp_xstrdup(d.nvram.path);
  } else if (d.firmware_efi && !d.running) {
    /* libvirt 9.0 names the NVRAM of a shut-off auto-selected firmware
     * only in the live XML; its place is fixed (and it is made at the
     * first start). */
    s->nvram_file = sp_xasprintf("/var/lib/libvirt/qemu/nvram/%s_VARS.fd", name);
    s->has_nvram = sp_exists(s->nvram_file);
  }
  if (s->has_nvram) {
    struct sp_blob b;
    struct sp_capture_stats st;
    struct sp_err le = { 0 };
    if (sp_blob_capture(s->nvram_file, 10, 2000, &b, &st, &le) < 0)
      s->nvram_error = sp_xstrdup(le.msg);
    else
      load_nvram(s, &b, NULL);
  }
  if (d.tpm.backend == SP_TPM_EMULATOR) {
    s->has_tpm = true;
    struct sp_tpm_location loc = { 0 };
    struct sp_tree t;
    struct sp_capture_stats st;
    struct sp_err le = { 0 };
    if (d.tpm.secret_uuid)
      s->tpm_error = sp_xstrdup("the TPM state is encrypted (libvirt secret): swtpm cannot "
                                "read it without the secret");
    else if (sp_tpm_locate(&d, SP_SWTPM_ROOT, &loc, &le) < 0)
      s->tpm_error = sp_xstrdup(le.msg);
    else if ((s->tpm_dir = sp_xstrdup(loc.state_dir)),
             sp_tree_capture(loc.state_dir, 10, 2000, &t, &st, &le) < 0)
      s->tpm_error = sp_xstrdup(le.msg);
    else {
      load_tpm(s, &t, d.tpm.version ? d.tpm.version : "2.0");
      sp_tree_free(&t);
    }
    sp_tpm_location_free(&loc);
  }
  sp_domain_free(&d);
  return 0;
}

/* A Ceph point: rbd_point.h opens it the way verify and restore do (its
 * commit record, the committed manifest, SHA256SUMS) and reads the NVRAM
 * and the TPM tree into memory, each object checked; nothing touches a
 * file.  Its "paths" are the point's name and the object names. */
static int load_rbd_point(struct source *s, const struct cli *c, const char *arg,
                          struct sp_err *e)
{
  snprintf(s->kind, sizeof s->kind, "point");
  struct sp_config cfg = { 0 };
  struct rbd_point p = { 0 };
  int rc = cli_load_config(c, NULL, &cfg, e);
  if (rc == 0)
    rc = rbd_point_open(&p, &cfg, arg, &c->log, e);
  if (rc == 0) {
    s->path = sp_xstrdup(p.name);
    s->id = sp_xstrdup(p.m.id);
    s->domain = sp_xstrdup(p.m.domain);
    s->created = p.m.created ? sp_xstrdup(p.m.created) : NULL;
  }
  if (rc == 0 && (s->has_nvram = p.m.nvram.present)) {
    struct sp_blob b = { 0 };
    struct sp_err le = { 0 };
    s->nvram_file = sp_xasprintf("%s/%s", p.name, p.m.nvram.path);
    if (rbd_point_nvram(&p, &b, &le) < 0) {
      s->nvram_error = sp_xstrdup(le.msg);
      sp_blob_free(&b);
    } else {
      load_nvram(s, &b, NULL); /* rbd_point_nvram checked it against the manifest */
    }
  }
  if (rc == 0 && (s->has_tpm = p.m.tpm.present)) {
    struct sp_tree t = { 0 };
    struct sp_err le = { 0 };
    s->tpm_dir = sp_xasprintf("%s/%s", p.name, p.m.tpm.path);
    if (p.m.tpm.secret_uuid)
      s->tpm_error = sp_xstrdup("the TPM state is encrypted (libvirt secret): swtpm cannot "
                                "read it without the secret");
    else if (rbd_point_tpm(&p, &t, &le) < 0)
      s->tpm_error = sp_xstrdup(le.msg);
    else
      load_tpm(s, &t, p.m.tpm.version ? p.m.tpm.version : "2.0");
    sp_tree_free(&t);
  }
  rbd_point_close(&p);
  sp_config_free(&cfg);
  return rc;
}

static int load(struct source *s, const struct cli *c, const char *point, const char *domain,
                struct sp_err *e)
{
  if (point && rbd_point_is(point))
    return load_rbd_point(s, c, point, e);
  if (point)
    return load_point(s, point, e);
  if (load_domain(s, c, domain, e) < 0)
    return sp_err_prefix(e, "domain %s", domain);
  return 0;
}

/* ---- output ------------------------------------------------------------ */

static void print_source_head(const struct source *s)
{
  if (strcmp(s->kind, "point") == 0)
    printf("point    %s\n         domain %s, point %s%s%s\n", s->path, s->domain, s->id,
           s->created ? ", taken " : "", s->created ? s->created : "");
  else
    printf("domain   %s (its current NVRAM and TPM state)\n", s->path);
}

static void print_source(const struct source *s)
{
  print_source_head(s);
  if (!s->has_nvram)
    printf("NVRAM    none\n");
  else if (!s->nvram_ok)
    printf("NVRAM    %s\n  unreadable: %s\n", s->nvram_file ? s->nvram_file : "?",
           s->nvram_error);
  else {
    printf("NVRAM    %s\n", s->nvram_file);
    inspect_print_nvram(stdout, &s->nvram);
  }
  if (!s->has_tpm)
    printf("TPM      none\n");
  else if (!s->tpm_ok)
    printf("TPM      %s\n  unreadable: %s\n", s->tpm_dir ? s->tpm_dir : "?", s->tpm_error);
  else {
    printf("TPM      %s\n", s->tpm_dir);
    inspect_print_tpm(stdout, &s->tpm);
  }
}

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *source_json(const struct source *s)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "kind", jstr(s->kind));
  json_object_object_add(o, "path", jstr(s->path));
  json_object_object_add(o, "domain", jstr(s->domain));
  json_object_object_add(o, "id", jstr(s->id));
  json_object_object_add(o, "created", jstr(s->created));
  json_object *nv = NULL, *tpm = NULL;
  if (s->has_nvram) {
    nv = s->nvram_ok ? inspect_json_nvram(&s->nvram) : json_object_new_object();
    json_object_object_add(nv, "file", jstr(s->nvram_file));
    json_object_object_add(nv, "error", jstr(s->nvram_error));
  }
  if (s->has_tpm) {
    tpm = s->tpm_ok ? inspect_json_tpm(&s->tpm) : json_object_new_object();
    json_object_object_add(tpm, "dir", jstr(s->tpm_dir));
    json_object_object_add(tpm, "error", jstr(s->tpm_error));
  }
  json_object_object_add(o, "nvram", nv);
  json_object_object_add(o, "tpm", tpm);
  return o;
}

static bool source_failed(const struct source *s)
{
  return (s->has_nvram && !s->nvram_ok) || (s->has_tpm && !s->tpm_ok);
}

static int compare(const struct source *a, const struct source *b, struct inspect_diff *d,
                   struct sp_err *e)
{
  if (inspect_diff_nvram(a->nvram_ok ? &a->nvram : NULL, b->nvram_ok ? &b->nvram : NULL, d,
                         e) < 0 ||
      inspect_diff_tpm(a->tpm_ok ? &a->tpm : NULL, b->tpm_ok ? &b->tpm : NULL, d, e) < 0)
    return -1;
  return 0;
}

int cmd_inspect(int argc, char **argv)
{
  struct cli c;
  struct inspect_opts o = { 0 };
  struct sp_err e = { 0 };
  struct source a = { 0 }, b = { 0 };
  struct inspect_diff d = { 0 };
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, (const struct option[]){
                  { "against", required_argument, NULL, OPT_AGAINST },
                  { "domain", required_argument, NULL, OPT_DOMAIN },
                  { 0 } }, extra_opt, &o, usage, &e) < 0 ||
      (c.nargs > 1 && sp_err_set(&e, SP_EXIT_USAGE, "inspect takes one POINT_DIR\n%s", usage)) ||
      (c.nargs == 0 && !o.domain &&
       sp_err_set(&e, SP_EXIT_USAGE, "inspect needs a POINT_DIR or --domain\n%s", usage)) ||
      (o.against && o.domain &&
       sp_err_set(&e, SP_EXIT_USAGE, "--against and --domain exclude each other\n%s", usage)) ||
      (o.against && c.nargs == 0 &&
       sp_err_set(&e, SP_EXIT_USAGE, "--against needs a POINT_DIR to compare\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  const char *point = c.nargs ? c.args[0] : NULL;
  bool versus = point && (o.against || o.domain);
  if (load(&a, &c, point, point ? NULL : o.domain, &e) < 0 ||
      (versus && load(&b, &c, o.against, o.against ? NULL : o.domain, &e) < 0) ||
      (versus && compare(&a, &b, &d, &e) < 0)) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (c.json) {
    json_object *j = json_object_new_object();
    json_object_object_add(j, "subject", source_json(&a));
    if (versus) {
      json_object_object_add(j, "reference", source_json(&b));
      json_object_object_add(j, "differences", inspect_json_diff(&d));
    }
    puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
  } else if (versus) {
    print_source_head(&a);
    printf("against\n");
    print_source_head(&b);
    for (const struct source *s = &a; s; s = s == &a ? &b : NULL) {
      if (s->has_nvram && !s->nvram_ok)
        printf("NVRAM of %s unreadable: %s\n", s->path, s->nvram_error);
      if (s->has_tpm && !s->tpm_ok)
        printf("TPM of %s unreadable: %s\n", s->path, s->tpm_error);
    }
    printf("%zu difference%s%s\n", d.n, d.n == 1 ? "" : "s", d.n ? ":" : "");
    inspect_print_diff(stdout, &d);
  } else {
    print_source(&a);
  }
  if (source_failed(&a) || source_failed(&b))
    rc = SP_EXIT_FAILED;
out:
  inspect_diff_free(&d);
  source_free(&a);
  source_free(&b);
  cli_free(&c);
  return rc;
}
