/* stillpoint restore POINT_DIR: a VM back from a point, with its TPM and
 * NVRAM (docs/design.md, "Restore and verify").  A point is untrusted
 * input (docs/design.md, "Threat model"): it is read through descriptors
 * below a trusted directory, every file it uses is checked against
 * SHA256SUMS and the manifest, its images are opened as what stillpoint
 * made, its domain XML goes through an allow-list, and nothing it says
 * decides where restore writes (restore_plan.h).  Everything is checked
 * before anything is written; what was written is removed again, and
 * what --replace moved aside is put back, when a later step fails. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "domain_filter.h"
#include "domain_xml.h"
#include "fsutil.h"
#include "hypervisor.h"
#include "instant_copy.h"
#include "instant_rbd.h"
#include "instant_xml.h"
#include "manifest.h"
#include "own_dirs.h"
#include "point_chain.h"
#include "qemu_access.h"
#include "qemu_conf.h"
#include "rbd_point.h"
#include "restore_disks.h"
#include "restore_plan.h"
#include "restore_xml.h"
#include "sha256.h"
#include "state_capture.h"
#include "state_install.h"
#include "state_locator.h"
#include "strv.h"
#include "trust.h"
#include "virt.h"
#include "xalloc.h"

static const char usage[] =
  "usage: stillpoint restore POINT_DIR|rbd:POOL[/NAMESPACE]/UUID@ID [--name NEW] [--keep-uuid]\n"
  "                          [--disks-to DIR | --recorded-paths] [--flatten | --keep-chain]\n"
  "                          [--other-disks keep|drop] [--trust-domain-xml]\n"
  "                          [--define] [--start] [--replace] [-c URI] [--ssh-key FILE] [--json]\n"
  "       stillpoint restore --instant POINT_DIR --name NEW --disks-to DIR [--bandwidth MIB]\n"
  "       stillpoint restore --instant rbd:POOL[/NAMESPACE]/UUID@ID --name NEW\n"
  "                          [--other-disks keep|drop] [--trust-domain-xml] [--json]\n"
  "       stillpoint restore --instant --resume NEW [--bandwidth MIB] [--json]\n"
  "Brings a VM back from a backup point: its disks, NVRAM and TPM state.\n"
  "Without --define the domain XML is printed; --start defines and starts it.\n"
  "--instant starts it at once on overlays backed by the point, then copies\n"
  "each disk into DIR underneath the running VM and switches over; a Ceph\n"
  "point's disks become RBD clones of its snapshots, nothing is copied.\n";

enum { OPT_NAME = 0x2200, OPT_KEEP_UUID, OPT_DISKS_TO, OPT_FLATTEN, OPT_KEEP_CHAIN, OPT_DEFINE,
       OPT_START, OPT_REPLACE, OPT_RECORDED, OPT_OTHER_DISKS, OPT_TRUST_XML, OPT_INSTANT,
       OPT_RESUME, OPT_BANDWIDTH };

struct restore_opts {
  const char *name, *disks_to;
  bool keep_uuid, keep_chain, define, start, replace, recorded, trust_xml;
  bool instant, resume;
  unsigned long long bandwidth; /* --bandwidth, bytes/s per disk; 0: no limit */
  enum restore_other_disks other_disks;
  bool other_disks_set;
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
  case OPT_RECORDED: o->recorded = true; break;
  case OPT_TRUST_XML: o->trust_xml = true; break;
  case OPT_INSTANT: o->instant = true; break;
  case OPT_RESUME: o->resume = true; break;
  case OPT_BANDWIDTH: {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || v == 0 || v > (1ull << 30))
      return sp_err_set(e, SP_EXIT_USAGE, "--bandwidth takes MiB/s, a whole number from 1");
    o->bandwidth = v << 20;
    break;
  }
  case OPT_OTHER_DISKS:
    if (strcmp(arg, "keep") == 0)
      o->other_disks = RESTORE_OTHER_KEEP;
    else if (strcmp(arg, "drop") == 0)
      o->other_disks = RESTORE_OTHER_DROP;
    else
      return sp_err_set(e, SP_EXIT_USAGE, "--other-disks takes keep or drop, not '%s'", arg);
    o->other_disks_set = true;
    break;
  default: return sp_err_set(e, SP_EXIT_USAGE, "unexpected option");
  }
  return 0;
}

/* Something --replace moved out of the way, put back on failure. */
struct aside {
  char *path;   /* where it was */
  char *kept;   /* where it is now */
};

struct restore {
  const struct cli *cli;
  const struct sp_log *log;
  struct restore_opts o;
  struct sp_point pt;
  struct sp_manifest m;
  struct sp_sums sums;
  char *point_xml;
  size_t point_xml_len;
  struct sp_domain point_dom;
  struct sp_disk_chain *chains; /* one per manifest disk */
  size_t nchains;
  struct rbd_point rbd;         /* a Ceph point: its pool; its manifest and sums moved out */
  bool is_rbd;
  char **rbd_sources;           /* per manifest disk: QEMU's rbd: name of its snapshot */
  char name[256];
  char uuid[37];
  struct sp_qemu_conf qc;
  struct hypervisor hv;      /* where the VM is restored: here or over SSH */
  virDomainPtr replaced;     /* the shut-off domain --replace takes the place of */
  char *replaced_xml;        /* its definition, to define again on failure */
  struct sp_domain replaced_dom;
  bool undefined_old;
  char **emulators;
  size_t nemulators;
  struct restore_plan plan;
  char **disk_paths;         /* plan's dir/file joined, per disk */
  int *disk_dirs;            /* local: each destination directory, held (trusted) */
  struct sp_blob nvram;
  struct sp_tree tpm;
  char *nvram_path;
  char *xml, *filtered;
  /* what was done, for the undo */
  struct restore_made_list made;  /* local files restore created */
  struct sp_strv remote_made;     /* remote files restore created */
  struct aside *asides;
  size_t nasides;
  char *tpm_kept;                 /* the state the TPM install moved aside */
  bool tpm_written;
  struct stat tpm_st;             /* the state directory restore put in place (local) */
  /* --instant */
  char run[PATH_MAX];             /* /run/stillpoint/instant/<uuid>: the NBD sockets */
  bool run_made;
  char **socks;                   /* per disk, NULL until served */
  virDomainPtr dom;               /* defined on the overlays */
  double t0;                      /* the command's start (monotonic) */
  double started_s, copied_s;     /* when the VM started, when the last disk pivoted */
  /* --instant of a Ceph point: the disks are clones, nothing is copied */
  bool rbd_instant;
  struct instant_rbd irbd;
};

static void restore_free(struct restore *r)
{
  size_t nsources = r->m.ndisks ? r->m.ndisks : r->rbd.m.ndisks; /* before or after the move */
  for (size_t i = 0; r->rbd_sources && i < nsources; i++)
    free(r->rbd_sources[i]);
  free(r->rbd_sources);
  instant_rbd_free(&r->irbd);
  rbd_point_close(&r->rbd);
  for (size_t i = 0; i < r->nchains; i++)
    sp_disk_chain_free(&r->chains[i]);
  free(r->chains);
  for (size_t i = 0; r->disk_paths && i < r->plan.ndisks; i++)
    free(r->disk_paths[i]);
  free(r->disk_paths);
  for (size_t i = 0; r->disk_dirs && i < r->plan.ndisks; i++)
    if (r->disk_dirs[i] >= 0)
      close(r->disk_dirs[i]);
  free(r->disk_dirs);
  restore_plan_free(&r->plan);
  sp_manifest_free(&r->m);
  sp_sums_free(&r->sums);
  free(r->point_xml);
  sp_domain_free(&r->point_dom);
  sp_domain_free(&r->replaced_dom);
  free(r->replaced_xml);
  for (size_t i = 0; i < r->nemulators; i++)
    free(r->emulators[i]);
  free(r->emulators);
  sp_qemu_conf_free(&r->qc);
  sp_blob_free(&r->nvram);
  sp_tree_free(&r->tpm);
  free(r->nvram_path);
  free(r->xml);
  free(r->filtered);
  restore_made_free(&r->made);
  sp_strv_free(&r->remote_made);
  for (size_t i = 0; i < r->nasides; i++) {
    free(r->asides[i].path);
    free(r->asides[i].kept);
  }
  free(r->asides);
  free(r->tpm_kept);
  if (r->replaced)
    virDomainFree(r->replaced);
  for (size_t i = 0; r->socks && i < r->plan.ndisks; i++)
    free(r->socks[i]);
  free(r->socks);
  if (r->dom)
    virDomainFree(r->dom);
  sp_point_close(&r->pt);
  hypervisor_close(&r->hv);
}

/* ---- the point: read through descriptors, every file checked ------------ */

static int load_point(struct restore *r, const char *arg, struct sp_err *e)
{
  if (sp_point_open(arg, &r->pt, e) < 0 || sp_point_scan(r->pt.fd, r->pt.path, e) < 0 ||
      sp_manifest_load_at(r->pt.fd, r->pt.path, &r->m, e) < 0)
    return e->code = e->code == SP_EXIT_FAILED ? SP_EXIT_PREFLIGHT : e->code, -1;
  if (strcmp(r->pt.name, r->m.id) != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: the manifest names point %s, not this "
                      "directory (an incomplete .partial point cannot be restored)", r->pt.path,
                      r->m.id);
  if (sp_sums_load_at(r->pt.fd, &r->sums, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s", r->pt.path);
  return 0;
}

static int check_sum(const struct restore *r, const char *rel, const char *hex, struct sp_err *e);

/* The manifest is used too: it must be the one SHA256SUMS lists. */
static int check_manifest_sum(struct restore *r, struct sp_err *e)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  char hex[SP_SHA256_HEX_LEN + 1];
  if (sp_read_file_at(r->pt.fd, "manifest.json", 64u << 20, &text, &len, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, -1;
  sp_sha256_hex(text, len, hex);
  return check_sum(r, "manifest.json", hex, e);
}

/* A file of the point against its line in SHA256SUMS. */
static int check_sum(const struct restore *r, const char *rel, const char *hex, struct sp_err *e)
{
  const char *want = sp_sums_find(&r->sums, rel);
  if (!want)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s is not listed in SHA256SUMS: refusing it",
                      r->pt.path, rel);
  if (strcmp(want, hex) != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s does not match its SHA-256 in SHA256SUMS: "
                      "the point is damaged or was changed (stillpoint verify names what else "
                      "is)", r->pt.path, rel);
  return 0;
}

static int check_file(const struct restore *r, const char *rel, const struct sp_blob *b,
                      const struct sp_manifest_file *f, struct sp_err *e)
{
  if (strcmp(b->sha256, f->sha256) != 0 || (long long)b->len != f->size)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s does not match its SHA-256 and size in the "
                      "manifest: the point is damaged (stillpoint verify names what else is)",
                      r->pt.path, rel);
  return check_sum(r, rel, b->sha256, e);
}

static int load_xml(struct restore *r, struct sp_err *e)
{
  char hex[SP_SHA256_HEX_LEN + 1];
  if (sp_read_file_at(r->pt.fd, "domain.xml", 16u << 20, &r->point_xml, &r->point_xml_len,
                      e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s", r->pt.path);
  sp_sha256_hex(r->point_xml, r->point_xml_len, hex);
  if (check_sum(r, "domain.xml", hex, e) < 0)
    return -1;
  if (sp_domain_parse(r->point_xml, r->point_xml_len, &r->point_dom, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s/domain.xml", r->pt.path);
  return 0;
}

static int load_state(struct restore *r, struct sp_err *e)
{
  if (r->m.nvram.present) {
    struct stat st;
    const struct sp_manifest_file *f = &r->m.nvram.files[0];
    _cleanup_close_ int fd = sp_open_regular_at(r->pt.fd, r->m.nvram.path, &st, e);
    if (fd < 0)
      return sp_err_prefix(e, "%s", r->pt.path);
    if (st.st_size != f->size)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s is %lld bytes, the manifest says %lld",
                        r->pt.path, r->m.nvram.path, (long long)st.st_size, f->size);
    if (sp_blob_read_fd(fd, f->name, &r->nvram, e) < 0 ||
        check_file(r, r->m.nvram.path, &r->nvram, f, e) < 0)
      return -1;
  }
  if (r->m.tpm.present) {
    if (sp_tree_read_at(r->pt.fd, r->m.tpm.path, &r->tpm, e) < 0)
      return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s", r->pt.path);
    if (r->tpm.n != r->m.tpm.nfiles)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s holds %zu files, the manifest lists %zu",
                        r->pt.path, r->m.tpm.path, r->tpm.n, r->m.tpm.nfiles);
    for (size_t i = 0; i < r->tpm.n; i++) {
      const struct sp_manifest_file *f = NULL;
      for (size_t k = 0; k < r->m.tpm.nfiles; k++)
        if (strcmp(r->m.tpm.files[k].name, r->tpm.files[i].name) == 0)
          f = &r->m.tpm.files[k];
      _cleanup_free_ char *rel = sp_path_join(r->m.tpm.path, r->tpm.files[i].name);
      if (!f)
        return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s is not in the manifest", r->pt.path, rel);
      if (check_file(r, rel, &r->tpm.files[i], f, e) < 0)
        return -1;
    }
  }
  return 0;
}

/* Every disk's chain through descriptors, headers checked; a chain that
 * is converted is hashed here, before anything is written (a kept chain,
 * and one flattened by copying, is hashed while it is copied, each copy
 * before QEMU reads it). */
static int load_chains(struct restore *r, struct sp_err *e)
{
  r->chains = sp_xcalloc(r->m.ndisks ? r->m.ndisks : 1, sizeof *r->chains);
  for (size_t i = 0; i < r->m.ndisks; i++) {
    struct sp_disk_chain *c = &r->chains[r->nchains++];
    if (sp_disk_chain_resolve(r->pt.domain_fd, r->pt.fd, &r->m, &r->sums, r->m.disks[i].target,
                              c, e) < 0 ||
        (!r->o.keep_chain &&
         !restore_plan_flatten_by_copy(c, restore_plan_flat_format(&r->m.disks[i])) &&
         sp_chain_check_hashes(c, 0, e) < 0))
      return e->code = SP_EXIT_PREFLIGHT, -1;
  }
  return 0;
}

/* A Ceph point (rbd_point.h): committed, its manifest the committed one,
 * domain.xml, NVRAM and TPM checked against SHA256SUMS and the manifest,
 * each disk's snapshot present with the manifest's size; all before
 * anything is written, as for a directory point.  A snapshot is a whole
 * disk: there is no chain to keep. */
static int load_rbd(struct restore *r, const char *arg, struct sp_err *e)
{
  struct sp_config cfg = { 0 };
  struct rbd_point *p = &r->rbd;
  int rc = cli_load_config(r->cli, NULL, &cfg, e);
  if (rc == 0)
    rc = rbd_point_open(p, &cfg, arg, r->log, e);
  sp_config_free(&cfg);
  if (rc < 0)
    return -1;
  r->is_rbd = true;
  snprintf(r->pt.path, sizeof r->pt.path, "%s", arg);
  snprintf(r->pt.name, sizeof r->pt.name, "%s", p->id);
  if (r->o.keep_chain)
    return sp_err_set(e, SP_EXIT_USAGE, "--keep-chain: a Ceph point's disk is one snapshot, "
                      "not a chain; restore it flattened");
  if (rbd_point_read(p, "domain.xml", &r->point_xml, &r->point_xml_len, e) < 0)
    return -1;
  if (sp_domain_parse(r->point_xml, r->point_xml_len, &r->point_dom, e) < 0)
    return e->code = SP_EXIT_PREFLIGHT, sp_err_prefix(e, "%s/domain.xml", r->pt.path);
  if ((p->m.nvram.present && rbd_point_nvram(p, &r->nvram, e) < 0) ||
      (p->m.tpm.present && rbd_point_tpm(p, &r->tpm, e) < 0))
    return -1;
  r->rbd_sources = sp_xcalloc(p->m.ndisks ? p->m.ndisks : 1, sizeof *r->rbd_sources);
  for (size_t i = 0; i < p->m.ndisks; i++)
    if (rbd_point_snap_check(p, &p->m.disks[i], e) < 0 ||
        !(r->rbd_sources[i] = rbd_point_qemu_source(p, &p->m.disks[i], e)))
      return e->code = e->code == SP_EXIT_FAILED ? SP_EXIT_PREFLIGHT : e->code,
             sp_err_prefix(e, "%s", r->pt.path);
  /* The rest of restore reads the manifest where a directory's is. */
  r->m = p->m;
  memset(&p->m, 0, sizeof p->m);
  return 0;
}

/* ---- the target ------------------------------------------------------- */

static int pick_identity(struct restore *r, struct sp_err *e)
{
  const char *n = r->o.name ? r->o.name : r->m.domain;
  /* Also a file name (<name>_VARS.fd) and a log name: a plain name. */
  bool ok = n[0] && n[0] != '.' && strlen(n) < 200 && !strchr(n, '/');
  for (const char *p = n; ok && *p; p++)
    ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
  if (!ok)
    return sp_err_set(e, r->o.name ? SP_EXIT_USAGE : SP_EXIT_PREFLIGHT, "'%s' cannot be a domain "
                      "name here%s", n, r->o.name ? "" : ": restore under another --name");
  snprintf(r->name, sizeof r->name, "%s", n);
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
  /* Kept whole, secrets included, to define it again if anything fails. */
  r->replaced_xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  if (!r->replaced_xml ||
      sp_domain_parse(r->replaced_xml, strlen(r->replaced_xml), &r->replaced_dom, e) < 0)
    return r->replaced_xml ? -1 : sp_err_set(e, SP_EXIT_FAILED, "--replace: cannot read the "
                                             "definition of %s: %s", dname, virt_errmsg());
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

static int load_emulators(struct restore *r, struct sp_err *e)
{
  _cleanup_free_ char *caps = virConnectGetCapabilities(r->hv.conn);
  if (!caps)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot read libvirt's capabilities: %s",
                      virt_errmsg());
  return domain_filter_emulators(caps, strlen(caps), &r->emulators, &r->nemulators, e);
}

/* Whether a TPM state directory holds anything but hidden files (swtpm's
 * .lock): libvirt would not manufacture a TPM there, so it is in use. */
static bool tpm_dir_in_use(struct sp_host *h, const char *dir)
{
  _cleanup_(sp_strv_free) struct sp_strv names = SP_STRV_INIT;
  struct sp_err ignored = { 0 };
  if (h->ops->list_dir(h, dir, &names, &ignored) < 0)
    return h->ops->exists(h, dir); /* there but unreadable: assume in use */
  bool used = false;
  for (size_t i = 0; i < names.n; i++)
    used |= names.v[i][0] != '.';
  return used;
}

static bool replacing_uuid(const struct restore *r)
{
  return r->replaced && r->replaced_dom.uuid && strcmp(r->replaced_dom.uuid, r->uuid) == 0;
}

/* A destination directory on a remote hypervisor, seen over SFTP: there is
 * no descriptor to hold, but one others can write is refused as here. */
static int remote_dir_open_to_others(struct sp_host *h, const char *dir, struct sp_err *e)
{
  struct sp_file_info fi;
  if (h->ops->file_info(h, dir, &fi, e) < 0)
    return -1;
  int rc = 0;
  if (!fi.exists)
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "disk destination %s does not exist on %s: create it "
                    "(owned by root, reachable by QEMU's user: mode 0711)", dir, h->name);
  else if (fi.mode & 022)
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "disk destination: %s on %s is writable by %s (owner "
                    "%s, mode %04o): fix: chmod go-w %s", dir, h->name,
                    (fi.mode & 002) ? "everyone" : "its group", fi.owner, fi.mode, dir);
  sp_file_info_free(&fi);
  return rc;
}

/* The destinations: decided by restore_plan, shown with what the point
 * recorded, checked where they are. */
static int plan(struct restore *r, struct sp_err *e)
{
  struct restore_plan_in in = { .m = &r->m, .point_dom = &r->point_dom,
                                .replaced = r->replaced ? &r->replaced_dom : NULL,
                                .name = r->name, .uuid = r->uuid,
                                /* A Ceph instant restore writes no disk file: its
                                 * disks become clones (placeholders here). */
                                .disks_to = r->rbd_instant ? "/rbd" : r->o.disks_to,
                                .recorded = r->o.recorded, .keep_chain = r->o.keep_chain };
  if (restore_plan_make(&in, &r->plan, e) < 0)
    return -1;
  r->disk_paths = sp_xcalloc(r->plan.ndisks ? r->plan.ndisks : 1, sizeof *r->disk_paths);
  r->disk_dirs = sp_xcalloc(r->plan.ndisks ? r->plan.ndisks : 1, sizeof *r->disk_dirs);
  for (size_t i = 0; i < r->plan.ndisks; i++)
    r->disk_dirs[i] = -1;
  struct sp_host *h = &r->hv.host;
  if (r->plan.nvram_dir) {
    r->nvram_path = sp_path_join(r->plan.nvram_dir, r->plan.nvram_file);
    sp_info(r->log, "NVRAM: recorded at %s, restored to %s", r->m.nvram.host_path,
            r->nvram_path);
    if (!r->plan.nvram_replaces && h->ops->exists(h, r->nvram_path))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "NVRAM file %s exists (it belongs to another "
                        "domain): restore under another --name", r->nvram_path);
  }
  if (r->plan.tpm_dir) {
    sp_info(r->log, "TPM state: recorded at %s, restored to %s", r->m.tpm.host_path,
            r->plan.tpm_dir);
    if (tpm_dir_in_use(h, r->plan.tpm_dir) && !replacing_uuid(r))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "TPM state directory %s is not empty: it belongs "
                        "to another VM with UUID %s; restore under a new UUID (--name without "
                        "--keep-uuid), or remove that state if it is no longer wanted",
                        r->plan.tpm_dir, r->uuid);
  }
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    const struct restore_plan_disk *d = &r->plan.disks[i];
    if (r->rbd_instant) {
      if (!(r->disk_paths[i] = instant_rbd_clone_name(r->uuid, d->target)))
        return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: no RBD clone name for it", d->target);
      sp_info(r->log, "disk %s: recorded at %s, restored as RBD clone %s/%s", d->target,
              d->recorded ? d->recorded : "(a network disk)", r->rbd.t.pool, r->disk_paths[i]);
      continue;
    }
    r->disk_paths[i] = sp_path_join(d->dir, d->file);
    sp_info(r->log, "disk %s: recorded at %s, restored to %s%s%s", d->target,
            d->recorded ? d->recorded : "(a network disk)", h->remote ? h->name : "",
            h->remote ? ":" : "", r->disk_paths[i]);
    if (h->remote && remote_dir_open_to_others(h, d->dir, e) < 0)
      return -1;
    if (!h->remote &&
        (r->disk_dirs[i] = sp_trusted_dir_open("disk destination", d->dir, e)) < 0)
      return e->code == SP_EXIT_PREFLIGHT && !sp_exists(d->dir)
               ? sp_err_set(e, SP_EXIT_PREFLIGHT, "disk destination %s does not exist: create it "
                            "(owned by root, reachable by QEMU's user: mode 0711)", d->dir)
               : -1;
    if (!d->replaces && h->ops->exists(h, r->disk_paths[i]))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists%s%s: restore the disks elsewhere with "
                        "--disks-to DIR (nothing is overwritten)", r->disk_paths[i],
                        h->remote ? " on " : "", h->remote ? h->name : "");
  }
  return 0;
}

/* The restored VM's QEMU opens its disks where they go: a directory it
 * cannot pass would define a VM that cannot start. */
static int check_disks_reach(struct restore *r, struct sp_err *e)
{
  if (!(r->o.define || r->o.start) || r->rbd_instant)
    return 0;
  struct qemu_creds c;
  if (qemu_creds_of_conf(&r->hv.host, &r->qc, &c, e) < 0)
    return -1;
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    char why[1536];
    bool seen = false;
    for (size_t k = 0; k < i; k++)
      seen |= strcmp(r->plan.disks[k].dir, r->plan.disks[i].dir) == 0;
    if (!seen && !qemu_can_reach(&r->hv.host, &c, r->o.disks_to ? "--disks-to" : "disk directory",
                                 r->plan.disks[i].dir, false, why, sizeof why))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s", why);
  }
  return 0;
}

static int make_xml(struct restore *r, struct sp_err *e)
{
  _cleanup_free_ struct restored_disk *rd = sp_xcalloc(r->plan.ndisks ? r->plan.ndisks : 1,
                                                      sizeof *rd);
  for (size_t i = 0; i < r->plan.ndisks; i++)
    rd[i] = (struct restored_disk){ r->plan.disks[i].target, r->disk_paths[i],
                                    r->plan.disks[i].format };
  bool renamed = strcmp(r->name, r->m.domain) != 0;
  enum restore_other_disks other = r->o.other_disks_set ? r->o.other_disks
                                   : r->o.trust_xml ? RESTORE_OTHER_KEEP
                                                    : RESTORE_OTHER_REFUSE;
  struct restore_xml_opts xo = {
    .name = r->name, .uuid = r->uuid, .new_macs = renamed, .disks = rd,
    .ndisks = r->plan.ndisks, .nvram_path = r->nvram_path, .tpm_dir = r->plan.tpm_dir,
    .tpm_source = r->plan.tpm_source, .other_disks = other, .trust = r->o.trust_xml,
    .emulators = (const char *const *)r->emulators, .nemulators = r->nemulators,
  };
  if (restore_xml(r->point_xml, r->point_xml_len, &xo, &r->xml, &r->filtered, e) < 0)
    return sp_err_prefix(e, "%s", r->pt.path);
  return 0;
}

/* With --trust-domain-xml: what the allow-list would have removed, as a
 * unified diff on stderr (diff(1) through files of our own). */
static void show_trusted_diff(struct restore *r)
{
  if (!r->o.trust_xml || !r->filtered)
    return;
  if (strcmp(r->filtered, r->xml) == 0) {
    sp_info(r->log, "--trust-domain-xml: the domain XML passes the filter as it is");
    return;
  }
  char dir[] = "/tmp/stillpoint-xml-XXXXXX";
  if (!mkdtemp(dir))
    return;
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct sp_err ignored = { 0 };
  _cleanup_free_ char *a = sp_path_join(dir, "filtered.xml"), *b = sp_path_join(dir,
                                                                               "trusted.xml");
  if (dfd >= 0 && a && b &&
      sp_write_file_at(dfd, "filtered.xml", r->filtered, strlen(r->filtered), 0600, &ignored) == 0 &&
      sp_write_file_at(dfd, "trusted.xml", r->xml, strlen(r->xml), 0600, &ignored) == 0) {
    char *argv[] = { "diff", "-u", "--label", "filtered", "--label", "defined (trusted)", a, b,
                     NULL };
    struct sp_run_result rr;
    if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT, &rr, &ignored) == 0) {
      sp_warn(r->log, "--trust-domain-xml: the domain XML is taken as it is; the filter would "
              "have removed:\n%s", rr.out ? rr.out : "");
      sp_run_result_free(&rr);
    }
  }
  sp_rm_rf(dir, &ignored);
}

/* ---- writing ------------------------------------------------------------ */

static void remember_remote(struct restore *r, const char *path)
{
  sp_strv_push(&r->remote_made, path);
}

/* --replace: what the replaced definition had there goes aside, under
 * <path>.replaced-<UTC>, within its own directory. */
static int move_aside(struct restore *r, const char *path, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  if (!h->ops->exists(h, path))
    return 0;
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  r->asides = sp_xreallocarray(r->asides, r->nasides + 1, sizeof *r->asides);
  struct aside *a = &r->asides[r->nasides];
  a->path = sp_xstrdup(path);
  a->kept = sp_xasprintf("%s.replaced-%s", path, stamp);
  if (h->ops->rename(h, a->path, a->kept, e) < 0) {
    free(a->path);
    free(a->kept);
    return sp_err_prefix(e, "--replace");
  }
  r->nasides++;
  sp_info(r->log, "--replace: %s kept as %s", path, a->kept);
  return 0;
}

/* A disk for a remote host: flattened here into a private directory,
 * then uploaded over SFTP, never over an existing file. */
static int upload_disk(struct restore *r, size_t i, struct sp_err *e)
{
  char dir[] = "/var/tmp/stillpoint-restore-XXXXXX";
  if (!mkdtemp(dir))
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "mkdtemp");
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct restore_made_list tmp = { 0 };
  int rc = dfd < 0 ? sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", dir)
                   : restore_disk(&r->chains[i], dfd, dir, "disk", r->plan.disks[i].format,
                                  false, &tmp, e);
  _cleanup_free_ char *local = sp_path_join(dir, "disk");
  if (rc == 0)
    rc = r->hv.host.ops->upload(&r->hv.host, local, r->disk_paths[i], e);
  if (rc == 0)
    remember_remote(r, r->disk_paths[i]);
  restore_made_free(&tmp);
  struct sp_err ignored = { 0 };
  sp_rm_rf(dir, &ignored);
  return rc;
}

static int write_disks(struct restore *r, struct sp_err *e)
{
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    const struct restore_plan_disk *d = &r->plan.disks[i];
    sp_info(r->log, "disk %s: %s %zu image%s -> %s%s%s (%s)", d->target,
            r->is_rbd ? "copying the snapshot of" : r->o.keep_chain ? "copying" : "flattening",
            r->is_rbd ? 1 : r->chains[i].n,
            r->is_rbd || r->chains[i].n == 1 ? "" : "s", r->hv.host.remote ? r->hv.host.name : "",
            r->hv.host.remote ? ":" : "", r->disk_paths[i], d->format);
    if (d->replaces && move_aside(r, r->disk_paths[i], e) < 0)
      return -1;
    int rc = r->is_rbd ? restore_disk_rbd(r->rbd_sources[i], r->disk_dirs[i], d->dir, d->file,
                                          d->format, &r->made, e)
             : r->hv.host.remote
               ? upload_disk(r, i, e)
               : restore_disk(&r->chains[i], r->disk_dirs[i], d->dir, d->file, d->format,
                              r->o.keep_chain, &r->made, e);
    if (rc < 0)
      return -1;
  }
  return 0;
}

/* TPM state on a remote host, as libvirt makes it: <uuid>/ 0711 root,
 * the state directory 0700 and its files 0600 of the swtpm user.  A
 * replaced domain's old state is moved aside first. */
static int remote_tpm_install(struct restore *r, uid_t uid, gid_t gid, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  const char *dir = r->plan.tpm_dir;
  _cleanup_free_ char *parent = sp_xstrdup(dir);
  char *slash = strrchr(parent, '/');
  if (!slash)
    return sp_err_set(e, SP_EXIT_FAILED, "TPM state directory %s is not an absolute path", dir);
  *slash = '\0';
  if (tpm_dir_in_use(h, dir)) {
    if (move_aside(r, dir, e) < 0)
      return -1;
  } else if (h->ops->rm_rf(h, dir, e) < 0) { /* only hidden files: swtpm's .lock */
    return -1;
  }
  if (h->ops->ensure_dir(h, parent, 0711, 0, 0, e) < 0 ||
      h->ops->mkdir_owned(h, dir, 0700, uid, gid, e) < 0)
    return -1;
  remember_remote(r, dir);
  for (size_t i = 0; i < r->tpm.n; i++) {
    _cleanup_free_ char *p = sp_path_join(dir, r->tpm.files[i].name);
    if (!p || h->ops->create_file(h, p, r->tpm.files[i].data, r->tpm.files[i].len, 0600, uid,
                                  gid, e) < 0)
      return -1;
  }
  return 0;
}

static int write_nvram(struct restore *r, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  uid_t uid;
  gid_t gid;
  if (h->ops->ids(h, r->qc.user, r->qc.group, &uid, &gid, e) < 0)
    return -1;
  if (r->plan.nvram_replaces && move_aside(r, r->nvram_path, e) < 0)
    return -1;
  if (h->remote) {
    if (h->ops->create_file(h, r->nvram_path, r->nvram.data, r->nvram.len, 0600, uid, gid,
                            e) < 0)
      return -1;
    remember_remote(r, r->nvram_path);
    return 0;
  }
  /* libvirt's NVRAM directory belongs to QEMU's user: trusted too, and
   * written only without replacing anything. */
  _cleanup_close_ int dfd = sp_trusted_dir_open_also("NVRAM directory", r->plan.nvram_dir, uid, e);
  struct stat st;
  if (dfd < 0 || sp_create_file_at(dfd, r->plan.nvram_file, r->nvram.data, r->nvram.len, 0600,
                                   uid, gid, &st, e) < 0)
    return dfd < 0 ? -1 : sp_err_prefix(e, "NVRAM %s", r->nvram_path);
  if (fsync(dfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "fsync %s", r->plan.nvram_dir);
  r->made.v = sp_xreallocarray(r->made.v, r->made.n + 1, sizeof *r->made.v);
  r->made.v[r->made.n++] = (struct restore_made){ .dir_fd = steal_fd(&dfd),
                                                  .name = sp_xstrdup(r->plan.nvram_file),
                                                  .st = st };
  return 0;
}

static int write_state(struct restore *r, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  if (r->m.nvram.present && write_nvram(r, e) < 0)
    return -1;
  if (r->m.tpm.present) {
    uid_t uid;
    gid_t gid;
    if (h->ops->ids(h, r->qc.swtpm_user, r->qc.swtpm_group, &uid, &gid, e) < 0)
      return -1;
    if (h->remote) {
      if (remote_tpm_install(r, uid, gid, e) < 0)
        return -1;
    } else {
      if (sp_tpm_install(r->plan.tpm_dir, &r->tpm, uid, gid, true, &r->tpm_kept, e) < 0)
        return -1;
      r->tpm_written = lstat(r->plan.tpm_dir, &r->tpm_st) == 0;
      if (r->tpm_kept)
        sp_info(r->log, "--replace: %s kept as %s", r->plan.tpm_dir, r->tpm_kept);
    }
  }
  /* SELinux hosts label these by path; restorecon puts the labels right. */
  if (!h->remote && access("/sys/fs/selinux/enforce", F_OK) == 0) {
    char *argv[] = { "restorecon", "-R", r->plan.tpm_dir ? r->plan.tpm_dir : "/dev/null",
                     r->nvram_path ? r->nvram_path : "/dev/null", NULL };
    struct sp_run_result rr;
    if (sp_run(argv, NULL, SP_RUN_CAPTURE_ERR, &rr, e) == 0)
      sp_run_result_free(&rr);
  }
  return 0;
}

/* Removes only what this restore made, then puts back what --replace
 * moved aside, then the old definition. */
static void undo(struct restore *r)
{
  struct sp_host *h = &r->hv.host;
  struct sp_err ignored = { 0 };
  restore_made_undo(&r->made);
  for (size_t i = r->remote_made.n; i-- > 0;)
    h->ops->rm_rf(h, r->remote_made.v[i], &ignored);
  if (r->tpm_written) {
    struct stat now;
    /* The directory restore put there, and only that one. */
    if (lstat(r->plan.tpm_dir, &now) == 0 && now.st_dev == r->tpm_st.st_dev &&
        now.st_ino == r->tpm_st.st_ino)
      sp_rm_rf(r->plan.tpm_dir, &ignored);
    if (r->tpm_kept && rename(r->tpm_kept, r->plan.tpm_dir) < 0)
      sp_warn(r->log, "cannot put the old TPM state back: it is in %s", r->tpm_kept);
  }
  for (size_t i = r->nasides; i-- > 0;) {
    sp_err_clear(&ignored);
    if (h->ops->rename(h, r->asides[i].kept, r->asides[i].path, &ignored) < 0)
      sp_warn(r->log, "cannot put %s back: it is in %s (%s)", r->asides[i].path,
              r->asides[i].kept, ignored.msg);
  }
  if (r->undefined_old) {
    _cleanup_dom_ virDomainPtr d = virDomainDefineXML(r->hv.conn, r->replaced_xml);
    if (!d)
      sp_warn(r->log, "cannot define the replaced domain again: %s; its XML was:\n%s",
              virt_errmsg(), r->replaced_xml);
  }
}

static int define(struct restore *r, struct sp_err *e)
{
  /* Same name and UUID: libvirt redefines in place and keeps its
   * checkpoints; nothing changes when it refuses.  Otherwise the old one
   * goes first, and comes back if the new one is refused. */
  if (r->replaced && !(replacing_uuid(r) && r->replaced_dom.name &&
                       strcmp(r->replaced_dom.name, r->name) == 0)) {
    unsigned flags = VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM |
                     VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                     VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
    if (virDomainUndefineFlags(r->replaced, flags) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "--replace: cannot undefine the old domain: %s",
                        virt_errmsg());
    r->undefined_old = true;
  }
  _cleanup_dom_ virDomainPtr dom = virDomainDefineXML(r->hv.conn, r->xml);
  if (!dom)
    return sp_err_set(e, SP_EXIT_FAILED, "libvirt refused the restored domain: %s%s",
                      virt_errmsg(), r->replaced ? " (the replaced domain and its files are "
                                                   "put back)" : "");
  r->undefined_old = false;
  sp_info(r->log, "defined domain %s (%s)", r->name, r->uuid);
  if (r->o.start) {
    if (virDomainCreate(dom) < 0)
      return sp_err_set(e, SP_EXIT_FAILED, "domain %s is defined but did not start: %s",
                        r->name, virt_errmsg());
    sp_info(r->log, "started domain %s", r->name);
  }
  return 0;
}

/* Where the restored VM's NVRAM and TPM state went: every report says it. */
static void json_add_state(json_object *o, const struct restore *r)
{
  json_object_object_add(o, "nvram", r->nvram_path ? json_object_new_string(r->nvram_path) : NULL);
  json_object_object_add(o, "tpm", r->plan.tpm_dir ? json_object_new_string(r->plan.tpm_dir)
                                                   : NULL);
}

static void json_print_put(json_object *o)
{
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
}

static void report(const struct restore *r)
{
  if (!r->cli->json) {
    if (!r->o.define)
      fputs(r->xml, stdout);
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "point", json_object_new_string(r->pt.path));
  json_object_object_add(o, "name", json_object_new_string(r->name));
  json_object_object_add(o, "uuid", json_object_new_string(r->uuid));
  json_object_object_add(o, "defined", json_object_new_boolean(r->o.define));
  json_object_object_add(o, "started", json_object_new_boolean(r->o.start));
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    json_object *d = json_object_new_object();
    json_object_object_add(d, "target", json_object_new_string(r->plan.disks[i].target));
    json_object_object_add(d, "path", json_object_new_string(r->disk_paths[i]));
    json_object_object_add(d, "recorded", r->plan.disks[i].recorded
                                            ? json_object_new_string(r->plan.disks[i].recorded)
                                            : NULL);
    json_object_object_add(d, "format", json_object_new_string(r->plan.disks[i].format));
    json_object_object_add(d, "images", json_object_new_int(r->is_rbd ? 1 : (int)r->chains[i].n));
    json_object_array_add(disks, d);
  }
  json_object_object_add(o, "disks", disks);
  json_add_state(o, r);
  json_object_object_add(o, "tpm_replaced_kept_as",
                         r->tpm_kept ? json_object_new_string(r->tpm_kept) : NULL);
  json_object *kept = json_object_new_array();
  for (size_t i = 0; i < r->nasides; i++)
    json_object_array_add(kept, json_object_new_string(r->asides[i].kept));
  json_object_object_add(o, "replaced_kept_as", kept);
  if (!r->o.define)
    json_object_object_add(o, "xml", json_object_new_string(r->xml));
  json_print_put(o);
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
  if (r->hv.host.remote && r->is_rbd)
    return sp_err_set(e, SP_EXIT_USAGE, "a Ceph point is restored on this machine only: run "
                      "stillpoint restore on the hypervisor, with access to the pool");
  return 0;
}

static int load_dir(struct restore *r, const char *point, struct sp_err *e)
{
  return load_point(r, point, e) < 0 || check_manifest_sum(r, e) < 0 || load_xml(r, e) < 0 ||
             load_state(r, e) < 0 || load_chains(r, e) < 0
           ? -1
           : 0;
}

static int run_restore(struct restore *r, const char *point, struct sp_err *e)
{
  int (*load)(struct restore *, const char *, struct sp_err *) =
    rbd_point_is(point) ? load_rbd : load_dir;
  if (load(r, point, e) < 0 || open_host(r, e) < 0 || pick_identity(r, e) < 0 ||
      sp_host_qemu_conf_read(&r->hv.host, SP_QEMU_CONF_PATH, &r->qc, e) < 0 ||
      check_libvirt(r, e) < 0 || check_secret(r, e) < 0 || load_emulators(r, e) < 0 ||
      plan(r, e) < 0 || check_disks_reach(r, e) < 0 || make_xml(r, e) < 0)
    return -1;
  show_trusted_diff(r);
  if (write_disks(r, e) < 0 || write_state(r, e) < 0 || (r->o.define && define(r, e) < 0)) {
    /* A domain that was defined but did not start keeps its files. */
    if (!(r->o.start && strstr(e->msg, "did not start")))
      undo(r);
    return -1;
  }
  report(r);
  return 0;
}


/* ---- restore --instant ---------------------------------------------------- */

static double mono_s(void)
{
  return (double)sp_now_ms() / 1000.0;
}

/* Serves each disk's chain, makes its overlay, defines the domain on the
 * overlays and starts it.  The persistent definition names the overlays
 * until every disk pivoted: a VM stopped in between starts again on them,
 * never on a half-copied image. */
static int instant_start(struct restore *r, struct sp_err *e)
{
  struct sp_host *h = &r->hv.host;
  uid_t uid;
  gid_t gid;
  if (h->ops->ids(h, r->qc.user, r->qc.group, &uid, &gid, e) < 0 ||
      instant_run_dir(r->uuid, r->run, e) < 0)
    return -1;
  if (sp_exists(r->run))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists: an instant restore with UUID %s is "
                      "under way", r->run, r->uuid);
  if (sp_dirs_prepare_local(r->run, 0711, e) < 0)
    return -1;
  r->run_made = true;
  size_t n = r->plan.ndisks;
  _cleanup_free_ struct instant_xml_disk *xd = sp_xcalloc(n ? n : 1, sizeof *xd);
  _cleanup_free_ char **ov = sp_xcalloc(n ? n : 1, sizeof *ov);
  r->socks = sp_xcalloc(n ? n : 1, sizeof *r->socks);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct restore_plan_disk *d = &r->plan.disks[i];
    _cleanup_free_ char *name = instant_overlay_name(d->file);
    struct stat st;
    ov[i] = sp_path_join(d->dir, name);
    sp_info(r->log, "disk %s: serving the point's %zu image%s read-only, overlay %s", d->target,
            r->chains[i].n, r->chains[i].n == 1 ? "" : "s", ov[i]);
    if (instant_serve(&r->chains[i], r->run, uid, gid, &r->socks[i], e) < 0 ||
        instant_overlay_create(r->disk_dirs[i], d->dir, name, r->socks[i],
                               r->chains[i].links[0].vsize, e) < 0) {
      rc = -1;
      break;
    }
    if (fstatat(r->disk_dirs[i], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "overlay %s", ov[i]);
      break;
    }
    r->made.v = sp_xreallocarray(r->made.v, r->made.n + 1, sizeof *r->made.v);
    r->made.v[r->made.n++] = (struct restore_made){
      .dir_fd = fcntl(r->disk_dirs[i], F_DUPFD_CLOEXEC, 3), .name = sp_xstrdup(name),
      .st = st };
    xd[i] = (struct instant_xml_disk){ d->target, ov[i], "qcow2", r->socks[i], NULL };
  }
  _cleanup_free_ char *live = NULL;
  if (rc == 0 && instant_xml_disks(r->xml, strlen(r->xml), xd, n, &live, e) < 0)
    rc = -1;
  if (rc == 0 && !(r->dom = virDomainDefineXML(r->hv.conn, live)))
    rc = sp_err_set(e, SP_EXIT_FAILED, "libvirt refused the restored domain: %s",
                    virt_errmsg());
  if (rc == 0) {
    sp_info(r->log, "defined domain %s (%s) on the overlays", r->name, r->uuid);
    if (virDomainCreate(r->dom) < 0)
      rc = sp_err_set(e, SP_EXIT_FAILED, "domain %s did not start: %s", r->name,
                      virt_errmsg());
  }
  for (size_t i = 0; i < n; i++)
    free(ov[i]);
  if (rc == 0) {
    r->started_s = mono_s() - r->t0;
    sp_info(r->log, "started domain %s %.1f s after the command began; copying its disks "
            "underneath it", r->name, r->started_s);
  }
  return rc;
}

/* Before the VM ran: nothing of it stays. */
static void instant_undo(struct restore *r)
{
  if (r->dom) {
    if (virDomainIsActive(r->dom) == 1)
      virDomainDestroy(r->dom);
    virDomainUndefineFlags(r->dom, VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | VIR_DOMAIN_UNDEFINE_KEEP_TPM |
                                     VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
                                     VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
  }
  for (size_t i = 0; r->socks && i < r->plan.ndisks; i++)
    if (r->socks[i])
      instant_unserve(r->run, r->plan.disks[i].target);
  struct sp_err ignored = { 0 };
  if (r->run_made)
    sp_rm_rf(r->run, &ignored);
}

static int instant_resume_hint(const char *name, struct sp_err *e)
{
  _cleanup_free_ char *why = strdup(e->msg);
  return sp_err_set(e, SP_EXIT_FAILED, "%s\n%s keeps running on its overlays, which read the "
                    "point through qemu-nbd (leave the point where it is). Fix the cause, then "
                    "finish with: stillpoint restore --instant --resume %s", why ? why : "",
                    name, name);
}

static void instant_report(const struct restore *r, const struct instant_disk *d, size_t n)
{
  if (!r->cli->json) {
    for (size_t i = 0; i < n; i++)
      printf("%s %s: %s/%s\n", r->name, d[i].target, d[i].dir, d[i].final);
    printf("%s started after %.1f s, its disks copied and switched over after %.1f s; the "
           "point is no longer used\n", r->name, r->started_s, r->copied_s);
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "event", json_object_new_string("done"));
  json_object_object_add(o, "point", r->pt.path[0] ? json_object_new_string(r->pt.path) : NULL);
  json_object_object_add(o, "name", json_object_new_string(r->name));
  json_object_object_add(o, "uuid", json_object_new_string(r->uuid));
  json_object_object_add(o, "started_after_s",
                         r->started_s > 0 ? json_object_new_double(r->started_s) : NULL);
  json_object_object_add(o, "finished_after_s", json_object_new_double(r->copied_s));
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    json_object *x = json_object_new_object();
    _cleanup_free_ char *p = sp_path_join(d[i].dir, d[i].final);
    json_object_object_add(x, "target", json_object_new_string(d[i].target));
    json_object_object_add(x, "path", json_object_new_string(p ? p : ""));
    json_object_object_add(x, "format", json_object_new_string(d[i].format));
    json_object_array_add(disks, x);
  }
  json_object_object_add(o, "disks", disks);
  json_add_state(o, r);
  json_print_put(o);
}

/* Copies, pivots and finishes; on failure the VM runs on and the message
 * says how to resume. */
static int instant_complete(struct restore *r, virDomainPtr dom, struct instant_disk *d,
                            size_t n, struct sp_err *e)
{
  if (instant_copy(dom, d, n, r->o.bandwidth, r->cli->json, r->log, e) < 0 ||
      instant_finish(r->hv.conn, dom, d, n, r->run, r->log, e) < 0)
    return instant_resume_hint(r->name, e);
  r->copied_s = mono_s() - r->t0;
  instant_report(r, d, n);
  return 0;
}

static int instant_usage(struct restore *r, struct sp_err *e)
{
  const struct restore_opts *o = &r->o;
  if (o->replace || o->keep_chain || o->recorded || o->keep_uuid)
    return sp_err_set(e, SP_EXIT_USAGE, "--instant restores a new VM beside the others: "
                      "--replace, --keep-chain, --recorded-paths and --keep-uuid do not apply");
  if (!o->resume && r->rbd_instant && (o->disks_to || !o->name))
    return sp_err_set(e, SP_EXIT_USAGE, "--instant of a Ceph point needs --name NEW and no "
                      "--disks-to: its disks are RBD clones in the pool");
  if (!o->resume && !r->rbd_instant && (!o->disks_to || !o->name))
    return sp_err_set(e, SP_EXIT_USAGE, "--instant needs --name NEW and --disks-to DIR (where "
                      "the overlays and the final images go)");
  if (o->resume && (o->disks_to || o->name || o->other_disks_set || o->trust_xml))
    return sp_err_set(e, SP_EXIT_USAGE, "--instant --resume takes the domain's name only");
  if (r->hv.host.remote)
    return sp_err_set(e, SP_EXIT_USAGE, "--instant is for this machine only");
  return 0;
}

/* A Ceph point: each disk's snapshot cloned, the VM defined on the clones
 * and started; nothing to copy afterwards.  Until it runs, everything is
 * undone (domain, clones, secret, NVRAM and TPM). */
static int instant_rbd_start(struct restore *r, struct sp_err *e)
{
  struct instant_rbd *x = &r->irbd;
  size_t n = r->plan.ndisks;
  _cleanup_free_ struct instant_xml_disk *xd = sp_xcalloc(n ? n : 1, sizeof *xd);
  if (instant_rbd_prepare(x, &r->rbd, e) < 0 ||
      instant_rbd_secret(x, r->hv.conn, &r->rbd, r->uuid, r->name, e) < 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const struct sp_manifest_disk *md = NULL;
    for (size_t k = 0; k < r->m.ndisks; k++)
      if (strcmp(r->m.disks[k].target, r->plan.disks[i].target) == 0)
        md = &r->m.disks[k];
    if (!md)
      return sp_err_set(e, SP_EXIT_FAILED, "disk %s is not in the manifest",
                        r->plan.disks[i].target);
    if (instant_rbd_clone(x, &r->rbd, md->rbd_image, md->rbd_snapshot, r->disk_paths[i], e) < 0)
      return -1;
    sp_info(r->log, "disk %s: cloned %s@%s into %s/%s", md->target, md->rbd_image,
            md->rbd_snapshot, r->rbd.t.pool, r->disk_paths[i]);
    xd[i] = (struct instant_xml_disk){ md->target, r->disk_paths[i], "raw", NULL, &x->xml };
  }
  _cleanup_free_ char *xml = NULL;
  if (instant_xml_disks(r->xml, strlen(r->xml), xd, n, &xml, e) < 0)
    return -1;
  if (!(r->dom = virDomainDefineXML(r->hv.conn, xml)))
    return sp_err_set(e, SP_EXIT_FAILED, "libvirt refused the restored domain: %s",
                      virt_errmsg());
  if (virDomainCreate(r->dom) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "domain %s did not start on its RBD clones: %s",
                      r->name, virt_errmsg());
  r->started_s = mono_s() - r->t0;
  sp_info(r->log, "started domain %s (%s) on RBD clones %.1f s after the command began",
          r->name, r->uuid, r->started_s);
  return 0;
}

static void instant_rbd_report(const struct restore *r)
{
  if (!r->cli->json) {
    printf("%s: running on RBD clones in pool %s (libvirt secret %s)\n", r->name,
           r->rbd.t.pool, r->irbd.secret_uuid);
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "point", json_object_new_string(r->pt.path));
  json_object_object_add(o, "name", json_object_new_string(r->name));
  json_object_object_add(o, "uuid", json_object_new_string(r->uuid));
  json_object_object_add(o, "started_s", json_object_new_double(r->started_s));
  json_object_object_add(o, "ceph_secret", json_object_new_string(r->irbd.secret_uuid));
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < r->plan.ndisks; i++) {
    json_object *d = json_object_new_object();
    json_object_object_add(d, "target", json_object_new_string(r->plan.disks[i].target));
    json_object_object_add(d, "rbd_pool", json_object_new_string(r->rbd.t.pool));
    json_object_object_add(d, "rbd_image", json_object_new_string(r->disk_paths[i]));
    json_object_array_add(disks, d);
  }
  json_object_object_add(o, "disks", disks);
  json_add_state(o, r);
  json_print_put(o);
}

static int run_instant_rbd(struct restore *r, const char *point, struct sp_err *e)
{
  r->rbd_instant = true;
  if (instant_usage(r, e) < 0 || load_rbd(r, point, e) < 0 || open_host(r, e) < 0 ||
      instant_usage(r, e) < 0 || pick_identity(r, e) < 0 ||
      sp_host_qemu_conf_read(&r->hv.host, SP_QEMU_CONF_PATH, &r->qc, e) < 0 ||
      check_libvirt(r, e) < 0 || check_secret(r, e) < 0 || load_emulators(r, e) < 0 ||
      plan(r, e) < 0 || make_xml(r, e) < 0)
    return -1;
  show_trusted_diff(r);
  if (write_state(r, e) < 0 || instant_rbd_start(r, e) < 0) {
    instant_undo(r);
    instant_rbd_undo(&r->irbd);
    undo(r);
    return -1;
  }
  instant_rbd_report(r);
  return 0;
}

static int run_instant(struct restore *r, const char *point, struct sp_err *e)
{
  r->t0 = mono_s();
  r->o.define = r->o.start = true;
  if (rbd_point_is(point))
    return run_instant_rbd(r, point, e);
  if (instant_usage(r, e) < 0 ||
      load_dir(r, point, e) < 0 || open_host(r, e) < 0 ||
      instant_usage(r, e) < 0 || pick_identity(r, e) < 0 ||
      sp_host_qemu_conf_read(&r->hv.host, SP_QEMU_CONF_PATH, &r->qc, e) < 0 ||
      check_libvirt(r, e) < 0 || check_secret(r, e) < 0 || load_emulators(r, e) < 0 ||
      plan(r, e) < 0 || check_disks_reach(r, e) < 0 || make_xml(r, e) < 0)
    return -1;
  show_trusted_diff(r);
  if (write_state(r, e) < 0 || instant_start(r, e) < 0) {
    instant_undo(r);
    undo(r);
    return -1;
  }
  size_t n = r->plan.ndisks;
  struct instant_disk *d = sp_xcalloc(n ? n : 1, sizeof *d);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct restore_plan_disk *p = &r->plan.disks[i];
    d[i] = (struct instant_disk){ .target = sp_xstrdup(p->target), .dir = sp_xstrdup(p->dir),
                                  .dir_fd = fcntl(r->disk_dirs[i], F_DUPFD_CLOEXEC, 3),
                                  .overlay = instant_overlay_name(p->file),
                                  .final = sp_xstrdup(p->file), .format = p->format };
    if (d[i].dir_fd < 0)
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot keep %s open", p->dir);
  }
  if (rc == 0)
    rc = instant_complete(r, r->dom, d, n, e);
  else
    rc = instant_resume_hint(r->name, e);
  instant_disks_free(d, n);
  return rc;
}

/* --resume NEW: the disks whose persistent definition still names an
 * overlay (<final>.overlay in its destination directory). */
static int resume_disks(struct restore *r, const struct sp_domain *def, struct instant_disk **out,
                        size_t *nout, struct sp_err *e)
{
  struct instant_disk *d = sp_xcalloc(def->ndisks ? def->ndisks : 1, sizeof *d);
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; i < def->ndisks && rc == 0; i++) {
    const struct sp_disk *k = &def->disks[i];
    const char *slash = k->source ? strrchr(k->source, '/') : NULL;
    _cleanup_free_ char *final = slash ? instant_final_name(slash + 1) : NULL;
    if (!final)
      continue;
    size_t fl = strlen(final);
    struct instant_disk *x = &d[n++];
    *x = (struct instant_disk){ .target = sp_xstrdup(k->target),
                                .dir = sp_xstrndup(k->source, (size_t)(slash - k->source)),
                                .dir_fd = -1, .overlay = sp_xstrdup(slash + 1),
                                .final = sp_xstrdup(final),
                                .format = fl > 4 && strcmp(final + fl - 4, ".raw") == 0
                                            ? "raw" : "qcow2" };
    if ((x->dir_fd = sp_trusted_dir_open("disk destination", x->dir, e)) < 0)
      rc = -1;
  }
  *out = d;
  *nout = n;
  return rc;
}

static int run_resume(struct restore *r, const char *name, struct sp_err *e)
{
  r->t0 = mono_s();
  if (instant_usage(r, e) < 0 || open_host(r, e) < 0 || instant_usage(r, e) < 0)
    return -1;
  snprintf(r->name, sizeof r->name, "%s", name);
  if (virt_lookup(r->hv.conn, name, &r->dom, e) < 0)
    return -1;
  if (virDomainGetUUIDString(r->dom, r->uuid) < 0 || instant_run_dir(r->uuid, r->run, e) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "domain %s: %s", name, virt_errmsg());
  _cleanup_free_ char *xml = NULL;
  struct sp_domain def = { 0 };
  struct instant_disk *d = NULL;
  size_t n = 0;
  int rc = virt_xml(r->dom, VIR_DOMAIN_XML_INACTIVE, &xml, e);
  if (rc == 0)
    rc = sp_domain_parse(xml, strlen(xml), &def, e);
  if (rc == 0)
    rc = resume_disks(r, &def, &d, &n, e);
  if (rc == 0 && n == 0)
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "domain %s has no disk on an instant restore's "
                    "overlay: nothing to resume", name);
  else if (rc == 0 && virDomainIsActive(r->dom) != 1)
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "domain %s is not running: start it (virsh start "
                    "%s; its overlays read the point through qemu-nbd in %s), then resume",
                    name, name, r->run);
  if (rc == 0)
    rc = instant_complete(r, r->dom, d, n, e);
  instant_disks_free(d, n);
  sp_domain_free(&def);
  return rc;
}

int cmd_restore(int argc, char **argv)
{
  static const struct option opts[] = {
    { "name", required_argument, NULL, OPT_NAME },
    { "keep-uuid", no_argument, NULL, OPT_KEEP_UUID },
    { "disks-to", required_argument, NULL, OPT_DISKS_TO },
    { "recorded-paths", no_argument, NULL, OPT_RECORDED },
    { "flatten", no_argument, NULL, OPT_FLATTEN },
    { "keep-chain", no_argument, NULL, OPT_KEEP_CHAIN },
    { "other-disks", required_argument, NULL, OPT_OTHER_DISKS },
    { "trust-domain-xml", no_argument, NULL, OPT_TRUST_XML },
    { "define", no_argument, NULL, OPT_DEFINE },
    { "start", no_argument, NULL, OPT_START },
    { "replace", no_argument, NULL, OPT_REPLACE },
    { "instant", no_argument, NULL, OPT_INSTANT },
    { "resume", no_argument, NULL, OPT_RESUME },
    { "bandwidth", required_argument, NULL, OPT_BANDWIDTH },
    { 0 },
  };
  struct cli c;
  struct sp_err e = { 0 };
  struct restore r = { .pt = SP_POINT_INIT };
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &r.o, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "restore needs one POINT_DIR\n%s", usage))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  r.cli = &c;
  r.log = &c.log;
  if ((r.o.disks_to && !sp_abspath_ok(r.o.disks_to) &&
       sp_err_set(&e, SP_EXIT_USAGE, "--disks-to needs a plain absolute path")) ||
      (r.o.disks_to && r.o.recorded &&
       sp_err_set(&e, SP_EXIT_USAGE, "--disks-to and --recorded-paths exclude each other"))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  int (*run)(struct restore *, const char *, struct sp_err *) =
    !r.o.instant ? run_restore : r.o.resume ? run_resume : run_instant;
  if (run(&r, c.args[0], &e) < 0)
    rc = cli_fail(&c, &e);
out:
  restore_free(&r);
  cli_free(&c);
  return rc;
}
