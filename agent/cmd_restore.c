/* stillpoint restore POINT_DIR: a VM back from a point, with its TPM and
 * NVRAM (docs/design.md, "Restore and verify").  Everything is checked
 * before anything is written - the point (manifest, symlinks, each disk's
 * chain, state hashes) and the target (name, UUID, TPM directory, files in
 * the way) - and what was written is removed again when a later step
 * fails. */
#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_job.h"
#include "child.h"
#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "fsutil.h"
#include "hypervisor.h"
#include "manifest.h"
#include "point_chain.h"
#include "qemu_access.h"
#include "qemu_conf.h"
#include "restore_disks.h"
#include "restore_xml.h"
#include "state_capture.h"
#include "state_install.h"
#include "state_locator.h"
#include "virt.h"

static const char usage[] =
  "usage: stillpoint restore POINT_DIR [--name NEW] [--keep-uuid] [--disks-to DIR]\n"
  "                          [--flatten | --keep-chain] [--define] [--start] [--replace]\n"
  "                          [-c URI] [--ssh-key FILE] [--json]\n"
  "Brings a VM back from a backup point: its disks, NVRAM and TPM state.\n"
  "Without --define the domain XML is printed; --start defines and starts it.\n";

enum { OPT_NAME = 0x2200, OPT_KEEP_UUID, OPT_DISKS_TO, OPT_FLATTEN, OPT_KEEP_CHAIN, OPT_DEFINE,
       OPT_START, OPT_REPLACE };

struct restore_opts {
  const char *name, *disks_to;
  bool keep_uuid, keep_chain, define, start, replace;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct restore_opts *o = user;
  switch (opt) {
  case OPT_NAME: o->name = arg; break;
  case OPT_KEEP_UUID: o->keep_uuid = true; break;
  case OPT_DISKS_TO: o->disks_to = arg; break;
  case OPT_FLATTEN: o->keep_chain = false; break;
  case OPT_KEEP_CHAIN: o->keep_chain = true; break;
  case OPT_DEFINE: o->define = true; break;
  case OPT_START: o->start = o->define = true; break;
  case OPT_REPLACE: o->replace = true; break;
  default: return sp_err_set(e, SP_EXIT_USAGE, "unexpected option");
  }
  return 0;
}

struct rdisk {
  struct sp_disk_chain chain;
  char *dest;
  const char *format;
  bool written;
};

struct restore {
  const struct cli *cli;
  const struct sp_log *log;
  struct restore_opts o;
  char point[PATH_MAX];
  struct sp_manifest m;
  struct rdisk *disks;
  size_t ndisks;
  char name[256];
  char uuid[37];
  struct sp_qemu_conf qc;
  struct hypervisor hv;      /* where the VM is restored: here or over SSH */
  virDomainPtr replaced;     /* the shut-off domain --replace takes the place of */
  struct sp_blob nvram;
  struct sp_tree tpm;
  char *nvram_dest;
  char *tpm_dir;
  char *tpm_kept;            /* the state --replace moved aside */
  bool nvram_written, tpm_written;
  char *xml;
};

static void restore_free(struct restore *r)
{
  for (size_t i = 0; i < r->ndisks; i++) {
    sp_disk_chain_free(&r->disks[i].chain);
    free(r->disks[i].dest);
  }
  free(r->disks);
  sp_manifest_free(&r->m);
  sp_qemu_conf_free(&r->qc);
  sp_blob_free(&r->nvram);
  sp_tree_free(&r->tpm);
  free(r->nvram_dest);
  free(r->tpm_dir);
  free(r->tpm_kept);
  free(r->xml);
  if (r->replaced)
    virDomainFree(r->replaced);
  hypervisor_close(&r->hv);
}

/* ---- the point -------------------------------------------------------- */

static int load_point(struct restore *r, const char *arg, struct sp_err *e)
{
  if (!realpath(arg, r->point))
    return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "point %s", arg);
  if (sp_point_scan(r->point, e) < 0 || sp_manifest_load(r->point, &r->m, e) < 0)
    return e->code = e->code == SP_EXIT_FAILED ? SP_EXIT_PREFLIGHT : e->code, -1;
  char copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", r->point);
  if (strcmp(basename(copy), r->m.id) != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: the manifest names point %s, not this "
                      "directory (an incomplete .partial point cannot be restored)", r->point,
                      r->m.id);
  return 0;
}

/* Reads a state file of the point and checks it against the manifest. */
static int check_blob(const struct sp_blob *b, const struct sp_manifest_file *f,
                      struct sp_err *e)
{
  if (strcmp(b->sha256, f->sha256) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s does not match its SHA-256 in the manifest: the "
                      "point is damaged (stillpoint verify names what else is)", b->name);
  return 0;
}

static int load_state(struct restore *r, struct sp_err *e)
{
  if (r->m.nvram.present) {
    _cleanup_free_ char *p = sp_path_join(r->point, r->m.nvram.path);
    if (!p || sp_blob_read(p, &r->nvram, e) < 0 || check_blob(&r->nvram, &r->m.nvram.files[0], e) < 0)
      return -1;
  }
  if (r->m.tpm.present) {
    _cleanup_free_ char *p = sp_path_join(r->point, r->m.tpm.path);
    bool temp;
    if (!p || sp_tree_read(p, &r->tpm, &temp, e) < 0)
      return -1;
    if (r->tpm.n != r->m.tpm.nfiles)
      return sp_err_set(e, SP_EXIT_FAILED, "%s holds %zu files, the manifest lists %zu", p,
                        r->tpm.n, r->m.tpm.nfiles);
    for (size_t i = 0; i < r->tpm.n; i++) {
      const struct sp_manifest_file *f = NULL;
      for (size_t k = 0; k < r->m.tpm.nfiles; k++)
        if (strcmp(r->m.tpm.files[k].name, r->tpm.files[i].name) == 0)
          f = &r->m.tpm.files[k];
      if (!f)
        return sp_err_set(e, SP_EXIT_FAILED, "%s/%s is not in the manifest", p,
                          r->tpm.files[i].name);
      if (check_blob(&r->tpm.files[i], f, e) < 0)
        return -1;
    }
  }
  return 0;
}

static int plan_disks(struct restore *r, struct sp_err *e)
{
  r->disks = calloc(r->m.ndisks ? r->m.ndisks : 1, sizeof *r->disks);
  if (!r->disks)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  for (size_t i = 0; i < r->m.ndisks; i++) {
    const struct sp_manifest_disk *d = &r->m.disks[i];
    struct rdisk *rd = &r->disks[r->ndisks++];
    if (sp_disk_chain_resolve(r->point, &r->m, d->target, &rd->chain, e) < 0) {
      e->code = SP_EXIT_PREFLIGHT;
      return -1;
    }
    if (!d->source && !r->o.disks_to)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s had no file on the host (a network "
                        "disk): restore with --disks-to DIR", d->target);
    _cleanup_free_ char *src = strdup(d->source ? d->source : d->target);
    if (!src)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    const char *base = basename(src);
    if (!sp_name_ok(base))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: cannot name a file after '%s'",
                        d->target, base);
    if (r->o.disks_to)
      rd->dest = sp_path_join(r->o.disks_to, base);
    else
      rd->dest = strdup(d->source);
    if (!rd->dest)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    rd->format = !r->o.keep_chain && d->format && strcmp(d->format, "raw") == 0 ? "raw" : "qcow2";
    if (r->hv.host.ops->exists(&r->hv.host, rd->dest))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists%s%s: restore the disks elsewhere with "
                        "--disks-to DIR (nothing is overwritten)", rd->dest,
                        r->hv.host.remote ? " on " : "", r->hv.host.remote ? r->hv.host.name : "");
  }
  return 0;
}

/* ---- the target ------------------------------------------------------- */

static int pick_identity(struct restore *r, struct sp_err *e)
{
  snprintf(r->name, sizeof r->name, "%s", r->o.name ? r->o.name : r->m.domain);
  if (strchr(r->name, '/') || !r->name[0])
    return sp_err_set(e, SP_EXIT_USAGE, "'%s' cannot be a domain name", r->name);
  if (r->o.name && strcmp(r->o.name, r->m.domain) != 0 && !r->o.keep_uuid)
    return restore_new_uuid(r->uuid, e);
  snprintf(r->uuid, sizeof r->uuid, "%s", r->m.uuid);
  return 0;
}

static int check_libvirt(struct restore *r, struct sp_err *e)
{
  _cleanup_dom_ virDomainPtr by_name = virDomainLookupByName(r->hv.conn, r->name);
  _cleanup_dom_ virDomainPtr by_uuid = virDomainLookupByUUIDString(r->hv.conn, r->uuid);
  if (!by_name && !by_uuid)
    return 0;
  char other[VIR_UUID_STRING_BUFLEN] = "";
  if (by_name && by_uuid) {
    virDomainGetUUIDString(by_name, other);
    if (strcmp(other, r->uuid) != 0)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "a domain named %s and another with UUID %s are "
                        "both defined: restore under another --name", r->name, r->uuid);
  }
  virDomainPtr d = by_name ? by_name : by_uuid;
  const char *dname = virDomainGetName(d);
  if (!r->o.replace)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain %s (name %s or UUID %s) is already defined: "
                      "restore under another --name, or shut it off and use --replace", dname,
                      r->name, r->uuid);
  int state = 0, reason;
  if (virDomainGetState(d, &state, &reason, 0) < 0 || state != VIR_DOMAIN_SHUTOFF)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "--replace: domain %s is not shut off; stop it "
                      "first (virsh shutdown %s)", dname, dname);
  r->replaced = d;
  if (d == by_name)
    by_name = NULL;
  else
    by_uuid = NULL;
  return 0;
}

static int check_secret(struct restore *r, struct sp_err *e)
{
  const char *s = r->m.tpm.secret_uuid;
  if (!r->m.tpm.present || !s)
    return 0;
  virSecretPtr sec = virSecretLookupByUUIDString(r->hv.conn, s);
  if (sec) {
    virSecretFree(sec);
    return 0;
  }
  return sp_err_set(e, SP_EXIT_PREFLIGHT, "the TPM state of this point is encrypted with "
                    "libvirt secret %s, which is not defined on this host: define it with that "
                    "UUID (virsh secret-define, then virsh secret-set-value with the key it held)"
                    " and run restore again", s);
}

/* The restored VM's QEMU opens its disks in --disks-to: a directory it
 * cannot pass would define a VM that cannot start. */
static int check_disks_reach(struct restore *r, struct sp_err *e)
{
  if (!r->o.disks_to || !(r->o.define || r->o.start))
    return 0;
  struct qemu_creds c;
  char why[1536];
  if (qemu_creds_of_conf(&r->hv.host, &r->qc, &c, e) < 0)
    return -1;
  if (!qemu_can_reach(&r->hv.host, &c, "--disks-to", r->o.disks_to, false, why, sizeof why))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s", why);
  return 0;
}

static bool replacing_uuid(const struct restore *r)
{
  char u[VIR_UUID_STRING_BUFLEN];
  return r->replaced && virDomainGetUUIDString(r->replaced, u) == 0 && strcmp(u, r->uuid) == 0;
}

/* Whether a TPM state directory holds anything but hidden files (swtpm's
 * .lock): libvirt would not manufacture a TPM there, so it is in use. */
static bool tpm_dir_in_use(struct sp_host *h, const char *dir)
{
  char **names = NULL;
  size_t n = 0;
  struct sp_err ignored = { 0 };
  if (h->ops->list_dir(h, dir, &names, &n, &ignored) < 0)
    return h->ops->exists(h, dir); /* there but unreadable: assume in use */
  bool used = false;
  for (size_t i = 0; i < n; i++) {
    used |= names[i][0] != '.';
    free(names[i]);
  }
  free(names);
  return used;
}

static int plan_state(struct restore *r, struct sp_err *e)
{
  if (r->m.nvram.present) {
    _cleanup_free_ char *host = strdup(r->m.nvram.host_path);
    if (!host)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    bool same = strcmp(r->name, r->m.domain) == 0 && strcmp(r->m.nvram.type, "file") == 0;
    if (same)
      r->nvram_dest = strdup(r->m.nvram.host_path);
    else if (asprintf(&r->nvram_dest, "%s/%s_VARS.fd",
                      strcmp(r->m.nvram.type, "file") == 0 ? dirname(host)
                                                           : "/var/lib/libvirt/qemu/nvram",
                      r->name) < 0)
      r->nvram_dest = NULL;
    if (!r->nvram_dest)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    if (r->hv.host.ops->exists(&r->hv.host, r->nvram_dest) && !r->replaced)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "NVRAM file %s exists (it belongs to another "
                        "domain): restore under another --name", r->nvram_dest);
  }
  if (r->m.tpm.present) {
    const char *sub = strcmp(r->m.tpm.version, "2.0") == 0 ? "tpm2" : "tpm1.2";
    if (asprintf(&r->tpm_dir, "%s/%s/%s", SP_SWTPM_ROOT, r->uuid, sub) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    if (tpm_dir_in_use(&r->hv.host, r->tpm_dir) && !replacing_uuid(r))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "TPM state directory %s is not empty: it belongs "
                        "to another VM with UUID %s; restore under a new UUID (--name without "
                        "--keep-uuid), or remove that state if it is no longer wanted",
                        r->tpm_dir, r->uuid);
  }
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* A disk for a remote host: flattened here into a private temporary file,
 * then uploaded over SFTP. */
static int upload_disk(struct restore *r, struct rdisk *d, struct sp_err *e)
{
  char dir[] = "/var/tmp/stillpoint-restore-XXXXXX";
  if (!mkdtemp(dir))
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "mkdtemp");
  _cleanup_free_ char *tmp = sp_path_join(dir, "disk");
  int rc = tmp ? restore_disk(&d->chain, tmp, d->format, false, e)
               : sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  if (rc == 0)
    rc = r->hv.host.ops->upload(&r->hv.host, tmp, d->dest, e);
  struct sp_err ignored = { 0 };
  sp_rm_rf(dir, &ignored);
  return rc;
}

static int write_disks(struct restore *r, struct sp_err *e)
{
  for (size_t i = 0; i < r->ndisks; i++) {
    struct rdisk *d = &r->disks[i];
    sp_info(r->log, "disk %s: %s %zu image%s -> %s%s%s (%s)", r->m.disks[i].target,
            r->o.keep_chain ? "copying" : "flattening", d->chain.n, d->chain.n == 1 ? "" : "s",
            r->hv.host.remote ? r->hv.host.name : "", r->hv.host.remote ? ":" : "", d->dest, d->format);
    int rc = r->hv.host.remote ? upload_disk(r, d, e)
                            : restore_disk(&d->chain, d->dest, d->format, r->o.keep_chain, e);
    if (rc < 0) {
      if (!r->hv.host.remote)
        restore_disk_undo(&d->chain, d->dest, r->o.keep_chain);
      return -1;
    }
    d->written = true;
  }
  return 0;
}

/* TPM state on a remote host, as libvirt makes it: <uuid>/ 0711 root,
 * the state directory 0700 and its files 0600 of the swtpm user.  A
 * replaced domain's old state is removed first. */
static int remote_tpm_install(struct restore *r, uid_t uid, gid_t gid, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  _cleanup_free_ char *parent = strdup(r->tpm_dir);
  char *slash = parent ? strrchr(parent, '/') : NULL;
  if (!slash)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  *slash = '\0';
  if (h->ops->rm_rf(h, r->tpm_dir, e) < 0 ||
      h->ops->ensure_dir(h, parent, 0711, 0, 0, e) < 0 ||
      h->ops->mkdir_owned(h, r->tpm_dir, 0700, uid, gid, e) < 0)
    return -1;
  for (size_t i = 0; i < r->tpm.n; i++) {
    _cleanup_free_ char *p = sp_path_join(r->tpm_dir, r->tpm.files[i].name);
    if (!p || h->ops->write_file(h, p, r->tpm.files[i].data, r->tpm.files[i].len, 0600, uid, gid,
                                 e) < 0)
      return -1;
  }
  return 0;
}

static int write_state(struct restore *r, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  if (r->m.nvram.present) {
    uid_t uid;
    gid_t gid;
    if (h->ops->ids(h, r->qc.user, r->qc.group, &uid, &gid, e) < 0)
      return -1;
    r->nvram.mode = 0600;
    r->nvram.uid = uid;
    r->nvram.gid = gid;
    if ((h->remote ? h->ops->write_file(h, r->nvram_dest, r->nvram.data, r->nvram.len, 0600, uid,
                                        gid, e)
                   : sp_nvram_install(r->nvram_dest, &r->nvram, e)) < 0)
      return -1;
    r->nvram_written = true;
  }
  if (r->m.tpm.present) {
    uid_t uid;
    gid_t gid;
    if (h->ops->ids(h, r->qc.swtpm_user, r->qc.swtpm_group, &uid, &gid, e) < 0 ||
        (h->remote ? remote_tpm_install(r, uid, gid, e)
                   : sp_tpm_install(r->tpm_dir, &r->tpm, uid, gid, true, &r->tpm_kept, e)) < 0)
      return -1;
    r->tpm_written = true;
  }
  /* SELinux hosts label these by path; restorecon puts the labels right. */
  if (!h->remote && access("/sys/fs/selinux/enforce", F_OK) == 0) {
    char *argv[] = { "restorecon", "-R", r->tpm_dir ? r->tpm_dir : "/dev/null",
                     r->nvram_dest ? r->nvram_dest : "/dev/null", NULL };
    struct sp_run_result rr;
    if (sp_run(argv, NULL, SP_RUN_CAPTURE_ERR, &rr, e) == 0)
      sp_run_result_free(&rr);
  }
  return 0;
}

static void undo(struct restore *r)
{
  struct sp_host *h = &r->hv.host;
  struct sp_err ignored = { 0 };
  for (size_t i = 0; i < r->ndisks; i++) {
    if (!r->disks[i].written)
      continue;
    if (h->remote)
      h->ops->rm_rf(h, r->disks[i].dest, &ignored);
    else
      restore_disk_undo(&r->disks[i].chain, r->disks[i].dest, r->o.keep_chain);
  }
  if (r->nvram_written && !r->replaced)
    h->ops->rm_rf(h, r->nvram_dest, &ignored);
  if (r->tpm_written && !r->tpm_kept)
    h->ops->rm_rf(h, r->tpm_dir, &ignored);
}

static int make_xml(struct restore *r, struct sp_err *e)
{
  _cleanup_free_ char *path = sp_path_join(r->point, "domain.xml");
  _cleanup_free_ char *xml = NULL;
  size_t len;
  if (!path || sp_read_file(path, 16u << 20, &xml, &len, e) < 0)
    return -1;
  _cleanup_free_ struct restored_disk *rd = calloc(r->ndisks ? r->ndisks : 1, sizeof *rd);
  if (!rd)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
  for (size_t i = 0; i < r->ndisks; i++)
    rd[i] = (struct restored_disk){ r->m.disks[i].target, r->disks[i].dest, r->disks[i].format };
  bool renamed = strcmp(r->name, r->m.domain) != 0;
  struct restore_xml_opts xo = { .name = r->name, .uuid = r->uuid, .new_macs = renamed,
                                 .disks = rd, .ndisks = r->ndisks,
                                 .nvram_path = r->nvram_dest };
  return restore_xml(xml, len, &xo, &r->xml, e);
}

static int define(struct restore *r, struct sp_err *e)
{
  if (r->replaced) {
    unsigned flags = VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM |
                     VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                     VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
    if (virDomainUndefineFlags(r->replaced, flags) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "--replace: cannot undefine the old domain: %s",
                        virt_errmsg());
  }
  _cleanup_dom_ virDomainPtr dom = virDomainDefineXML(r->hv.conn, r->xml);
  if (!dom)
    return sp_err_set(e, SP_EXIT_FAILED, "libvirt refused the restored domain: %s",
                      virt_errmsg());
  sp_info(r->log, "defined domain %s (%s)", r->name, r->uuid);
  if (r->o.start) {
    if (virDomainCreate(dom) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "domain %s is defined but did not start: %s",
                        r->name, virt_errmsg());
    sp_info(r->log, "started domain %s", r->name);
  }
  return 0;
}

static void report(const struct restore *r)
{
  if (!r->cli->json) {
    if (!r->o.define)
      fputs(r->xml, stdout);
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "point", json_object_new_string(r->point));
  json_object_object_add(o, "name", json_object_new_string(r->name));
  json_object_object_add(o, "uuid", json_object_new_string(r->uuid));
  json_object_object_add(o, "defined", json_object_new_boolean(r->o.define));
  json_object_object_add(o, "started", json_object_new_boolean(r->o.start));
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < r->ndisks; i++) {
    json_object *d = json_object_new_object();
    json_object_object_add(d, "target", json_object_new_string(r->m.disks[i].target));
    json_object_object_add(d, "path", json_object_new_string(r->disks[i].dest));
    json_object_object_add(d, "format", json_object_new_string(r->disks[i].format));
    json_object_object_add(d, "images", json_object_new_int((int)r->disks[i].chain.n));
    json_object_array_add(disks, d);
  }
  json_object_object_add(o, "disks", disks);
  json_object_object_add(o, "nvram", r->nvram_dest ? json_object_new_string(r->nvram_dest) : NULL);
  json_object_object_add(o, "tpm", r->tpm_dir ? json_object_new_string(r->tpm_dir) : NULL);
  json_object_object_add(o, "tpm_replaced_kept_as",
                         r->tpm_kept ? json_object_new_string(r->tpm_kept) : NULL);
  if (!r->o.define)
    json_object_object_add(o, "xml", json_object_new_string(r->xml));
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
}

/* This machine, or the hypervisor of a qemu+ssh URI, reached before
 * anything else is looked at there. */
static int open_host(struct restore *r, struct sp_err *e)
{
  if (hypervisor_open(&r->hv, r->cli, NULL, e) < 0)
    return -1;
  if (r->hv.host.remote && r->o.keep_chain)
    return sp_err_set(e, SP_EXIT_USAGE, "--keep-chain is for this machine only; a remote "
                      "restore flattens each disk");
  return 0;
}

static int run_restore(struct restore *r, const char *point, struct sp_err *e)
{
  if (load_point(r, point, e) < 0 || load_state(r, e) < 0 || open_host(r, e) < 0 ||
      plan_disks(r, e) < 0 || pick_identity(r, e) < 0 ||
      sp_host_qemu_conf_read(&r->hv.host, SP_QEMU_CONF_PATH, &r->qc, e) < 0 ||
      check_libvirt(r, e) < 0 || check_disks_reach(r, e) < 0 ||
      check_secret(r, e) < 0 || plan_state(r, e) < 0 || make_xml(r, e) < 0)
    return -1;
  if (write_disks(r, e) < 0 || write_state(r, e) < 0 || (r->o.define && define(r, e) < 0)) {
    /* A domain that was defined but did not start keeps its files. */
    if (!(r->o.start && strstr(e->msg, "did not start")))
      undo(r);
    return -1;
  }
  report(r);
  return 0;
}

int cmd_restore(int argc, char **argv)
{
  static const struct option opts[] = {
    { "name", required_argument, NULL, OPT_NAME },
    { "keep-uuid", no_argument, NULL, OPT_KEEP_UUID },
    { "disks-to", required_argument, NULL, OPT_DISKS_TO },
    { "flatten", no_argument, NULL, OPT_FLATTEN },
    { "keep-chain", no_argument, NULL, OPT_KEEP_CHAIN },
    { "define", no_argument, NULL, OPT_DEFINE },
    { "start", no_argument, NULL, OPT_START },
    { "replace", no_argument, NULL, OPT_REPLACE },
    { 0 },
  };
  struct cli c;
  struct sp_err e = { 0 };
  struct restore r = { 0 };
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &r.o, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "restore needs one POINT_DIR\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  r.cli = &c;
  r.log = &c.log;
  if (r.o.disks_to && r.o.disks_to[0] != '/') {
    sp_err_set(&e, SP_EXIT_USAGE, "--disks-to needs an absolute path");
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (run_restore(&r, c.args[0], &e) < 0)
    rc = cli_fail(&c, &e);
out:
  restore_free(&r);
  cli_free(&c);
  return rc;
}
