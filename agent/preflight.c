#include "preflight.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "freeze_probe.h"
#include "fsutil.h"
#include "host.h"
#include "nbd_tcp.h"
#include "own_dirs.h"
#include "restore_plan.h"
#include "trust.h"
#include "virt.h"
#include "xalloc.h"

/* Never fails (xalloc.h: out of memory aborts), so a refusal is never
 * lost and preflight can never wave through what it meant to refuse. */
static __attribute__((format(printf, 2, 3))) void add(struct sp_strv *list, const char *fmt,
                                                       ...)
{
  va_list ap;
  va_start(ap, fmt);
  sp_strv_push_take(list, sp_xvasprintf(fmt, ap));
  va_end(ap);
}

#define refuse(pf, ...) add(&(pf)->refusals, __VA_ARGS__)
#define warn(pf, ...) add(&(pf)->warnings, __VA_ARGS__)

static int check_disks(virDomainPtr dom, struct preflight *pf, struct sp_err *e)
{
  pf->disks = sp_xcalloc(pf->dom.ndisks ? pf->dom.ndisks : 1, sizeof *pf->disks);
  size_t copied = 0;
  for (size_t i = 0; i < pf->dom.ndisks; i++) {
    struct pf_disk *d = &pf->disks[pf->ndisks++];
    d->disk = &pf->dom.disks[i];
    d->skip = sp_disk_skip_reason(d->disk);
    if (d->skip)
      continue;
    copied++;
    d->full_only = !sp_disk_can_bitmap(d->disk);
    virDomainBlockInfo bi;
    if (virDomainGetBlockInfo(dom, d->disk->target, &bi, 0) == 0)
      d->capacity = bi.capacity;
    else
      refuse(pf, "cannot read the size of disk %s: %s", d->disk->target, virt_errmsg());
    if (d->full_only)
      warn(pf, "disk %s is %s: it cannot have a dirty bitmap, so every point copies it in full"
           " (convert it to qcow2 for incremental points)", d->disk->target,
           d->disk->format ? d->disk->format : "of unknown format");
  }
  if (copied == 0)
    refuse(pf, "domain %s has no disk to back up (all are skipped or absent)", pf->dom.name);
  return 0;
}

/* What to change for a file this user cannot read, here or on a remote host. */
static void hint_for(struct sp_host *h, const struct sp_file_info *fi, const char *what,
                     char *buf, size_t size)
{
  if (!h->remote) {
    sp_access_hint(fi, what, buf, size);
    return;
  }
  if (!fi->owner[0])
    snprintf(buf, size, "%s %s on %s cannot be examined by the SSH user: connect as root "
             "(qemu+ssh://root@%s/system)", what, fi->path, h->name, h->name);
  else
    snprintf(buf, size, "%s %s on %s is owned by %s:%s mode %04o: connect as root "
             "(qemu+ssh://root@%s/system) or add the SSH user to group %s there", what,
             fi->path, h->name, fi->owner, fi->group, (unsigned)fi->mode, h->name, fi->group);
}

static void check_nvram(struct sp_host *h, const struct sp_config *cfg, struct preflight *pf,
                        struct sp_err *e)
{
  const struct sp_nvram *nv = &pf->dom.nvram;
  if (nv->type == SP_NVRAM_NONE || sp_config_is(cfg, SP_KEY_NVRAM, "skip"))
    return;
  bool required = sp_config_is(cfg, SP_KEY_NVRAM, "required");
  if (nv->type == SP_NVRAM_NETWORK) {
    if (required)
      refuse(pf, "NVRAM of %s is on the network (<nvram type='network'>): stillpoint cannot "
             "capture it; set nvram = skip for this VM to back up without it", pf->dom.name);
    else
      warn(pf, "NVRAM on the network is not captured");
    return;
  }
  if (!nv->path) {
    refuse(pf, "the NVRAM of %s has no path in the domain XML", pf->dom.name);
    return;
  }
  if (h->ops->file_info(h, nv->path, &pf->nvram, e) < 0)
    return;
  char hint[1024];
  if (!pf->nvram.exists) {
    snprintf(hint, sizeof hint, "NVRAM file %s does not exist", nv->path);
  } else if (!pf->nvram.readable) {
    hint_for(h, &pf->nvram, "NVRAM", hint, sizeof hint);
  } else {
    pf->capture_nvram = true;
    return;
  }
  if (required)
    refuse(pf, "%s", hint);
  else
    warn(pf, "%s; the point will have no NVRAM (nvram = optional)", hint);
}

static void check_tpm(struct sp_host *h, const struct sp_domain *d, const struct sp_config *cfg,
                      struct preflight *pf, struct sp_err *e)
{
  if (d->tpm.backend == SP_TPM_NONE || sp_config_is(cfg, SP_KEY_TPM, "skip"))
    return;
  if (d->tpm.backend == SP_TPM_PASSTHROUGH) {
    warn(pf, "the TPM of %s is a passthrough of the host's %s: its state lives in the host's "
         "TPM chip, there is nothing to capture", d->name,
         d->tpm.device_path ? d->tpm.device_path : "TPM");
    return;
  }
  if (d->tpm.backend != SP_TPM_EMULATOR) {
    warn(pf, "the TPM backend of %s is not an emulator: nothing to capture", d->name);
    return;
  }
  bool required = sp_config_is(cfg, SP_KEY_TPM, "required");
  if (sp_host_tpm_locate(h, d, SP_SWTPM_ROOT, &pf->tpm, e) < 0) {
    refuse(pf, "%s", e->msg);
    sp_err_clear(e);
    return;
  }
  char hint[1024] = "";
  if (!pf->tpm.dir.exists)
    snprintf(hint, sizeof hint, "TPM state directory %s does not exist (has the VM's swtpm "
             "ever started?)", pf->tpm.state_dir);
  else if (!pf->tpm.listable)
    hint_for(h, &pf->tpm.dir, "TPM state", hint, sizeof hint);
  else if (pf->tpm.nfiles == 0)
    snprintf(hint, sizeof hint, "TPM state directory %s is empty", pf->tpm.state_dir);
  for (size_t i = 0; !hint[0] && i < pf->tpm.nfiles; i++)
    if (!pf->tpm.files[i].readable)
      hint_for(h, &pf->tpm.files[i], "TPM state file", hint, sizeof hint);
  if (!hint[0]) {
    pf->capture_tpm = true;
    return;
  }
  if (required)
    refuse(pf, "%s", hint);
  else
    warn(pf, "%s; the point will have no TPM state (tpm = optional)", hint);
}

static void check_agent(virDomainPtr dom, const struct sp_config *cfg, struct preflight *pf)
{
  if (sp_config_is(cfg, SP_KEY_FREEZE, "off"))
    return;
  bool required = sp_config_is(cfg, SP_KEY_FREEZE, "required");
  int timeout = (int)sp_config_int(cfg, SP_KEY_FREEZE_TIMEOUT_S);
  char why[600] = "", answer[400];
  const char *fix = "install and start qemu-guest-agent in the guest";
  if (!pf->dom.agent_configured) {
    snprintf(why, sizeof why, "has no guest agent channel");
  } else if (!pf->dom.agent_connected) {
    snprintf(why, sizeof why, "has a guest agent channel but no agent answering in the guest");
  } else if (pf->state == VIR_DOMAIN_PAUSED) {
    snprintf(why, sizeof why, "is paused: its guest agent cannot freeze without running vCPUs");
    fix = "resume it";
  } else if (pf->state != VIR_DOMAIN_SHUTOFF) {
    /* Connected per the XML says only that the port is open: a hung or
     * stopped agent must get no freeze it would carry out later. */
    pf->agent = freeze_probe(dom, timeout, answer, sizeof answer);
    if (pf->agent == PF_AGENT_SILENT) {
      snprintf(why, sizeof why, "has a guest agent that did not answer within freeze_timeout_s "
               "= %d s (%s)", timeout, answer);
      fix = "restart qemu-guest-agent in the guest";
    } else if (pf->agent == PF_AGENT_NO_FREEZE) {
      snprintf(why, sizeof why, "has a guest agent that cannot report its freeze state (%s)",
               answer);
      fix = "allow guest-fsfreeze-* in qemu-guest-agent";
    }
  }
  if (!why[0])
    return;
  if (required)
    refuse(pf, "domain %s %s, and freeze = required: %s, or set freeze = auto", pf->dom.name,
           why, fix);
  else
    warn(pf, "domain %s %s: file systems will not be frozen (crash-consistent point)",
         pf->dom.name, why);
}

/* The nearest existing ancestor of path must let us create it. */
static void check_writable_dir(struct preflight *pf, const char *key, const char *path)
{
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  while (!sp_exists(buf)) {
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) {
      strcpy(buf, "/");
      break;
    }
    *slash = '\0';
  }
  if (!sp_is_dir(buf))
    refuse(pf, "%s %s: %s is not a directory", key, path, buf);
  else if (access(buf, W_OK | X_OK) != 0)
    refuse(pf, "%s %s: %s is not writable by this user (run as root, or set %s to a "
           "writable directory)", key, path, buf, key);
}

/* The backup job's scratch files hold each block the guest overwrites while
 * the copy runs: at worst every block of every copied disk.  A full
 * scratch_dir fails the guest's writes (QEMU's copy-before-write filter)
 * and pauses the VM on an I/O error until stillpoint aborts the job. */
static void check_scratch_space(struct preflight *pf, const char *path)
{
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  while (!sp_exists(buf) && strrchr(buf, '/') && strrchr(buf, '/') != buf)
    *strrchr(buf, '/') = '\0';
  struct statvfs st;
  if (statvfs(sp_exists(buf) ? buf : "/", &st) < 0)
    return;
  unsigned long long free_b = (unsigned long long)st.f_bavail * st.f_frsize, need = 0;
  for (size_t i = 0; i < pf->ndisks; i++)
    if (!pf->disks[i].skip)
      need += pf->disks[i].capacity;
  if (free_b < need)
    warn(pf, "scratch_dir %s has %.1f MiB free, less than the %.1f MiB the copied disks of %s "
         "may need if the guest overwrites them during the copy: a full scratch_dir pauses the "
         "VM on an I/O error and fails the point (stillpoint then aborts the job and resumes "
         "it); free space there or point scratch_dir at a bigger file system", path,
         (double)free_b / 1048576.0, (double)need / 1048576.0, pf->dom.name);
}

/* Points are written, later read back by restore and removed by prune, as
 * root: nobody else may be able to swap anything on the way (trust.h). */
static void check_trusted_target(struct preflight *pf, const char *target)
{
  _cleanup_free_ char *dir = sp_path_join(target, pf->dom.name);
  struct sp_err te = { 0 };
  if (dir && sp_trusted_path_check("target", dir, &te) < 0 && te.code == SP_EXIT_PREFLIGHT)
    refuse(pf, "%s", te.msg);
}

/* QEMU creates the job's socket and scratch files itself, inside the
 * pause: its user must pass every directory on the way, and its security
 * driver must allow the paths (qemu_access.h). */
static void check_qemu_access(struct sp_host *h, const struct sp_config *cfg,
                              struct preflight *pf, struct sp_err *e)
{
  if (qemu_creds_get(h, &pf->dom, &pf->qc, &pf->qemu, e) < 0) {
    refuse(pf, "cannot tell who QEMU runs as on %s: %s", h->name, e->msg);
    sp_err_clear(e);
    return;
  }
  /* Run as root here (or as whoever the SSH login is there), stillpoint
   * repairs its own directories before it uses them. */
  bool can_repair = h->remote || geteuid() == 0;
  const char *scratch = sp_config_str(cfg, SP_KEY_SCRATCH_DIR);
  char why[1536];
  if (!qemu_can_reach(h, &pf->qemu, "the job directory in", SP_RUN_DIR, can_repair, why,
                      sizeof why))
    refuse(pf, "%s", why);
  if (!qemu_can_reach(h, &pf->qemu, "scratch_dir", scratch, can_repair, why, sizeof why))
    refuse(pf, "%s", why);
  if (pf->dom.confined_apparmor) {
    _cleanup_free_ char *local = NULL;
    size_t len;
    struct sp_err ignored = { 0 };
    pf->apparmor_rule = h->ops->exists(h, SP_APPARMOR_RULE) &&
                        h->ops->read_text(h, SP_APPARMOR_LOCAL, 1 << 20, &local, &len,
                                          &ignored) == 0 &&
                        qemu_apparmor_rule_included(local);
    if (!pf->apparmor_rule)
      warn(pf, "AppArmor confines the QEMU of %s and stillpoint's rule is not in its profile: "
           "the backup job's socket in %s and its scratch files will be denied; install "
           "the stillpoint package (it adds `include <abstractions/stillpoint-qemu>` to %s), "
           "then reload the VM's profile or restart the VM (docs/install.md, \"AppArmor\")",
           pf->dom.name, SP_RUN_DIR, SP_APPARMOR_LOCAL);
    else if (strncmp(scratch, SP_SCRATCH_DEFAULT "/", sizeof SP_SCRATCH_DEFAULT) != 0 &&
             strcmp(scratch, SP_SCRATCH_DEFAULT) != 0)
      warn(pf, "AppArmor confines the QEMU of %s and stillpoint's rule allows scratch files "
           "only below %s: add `%s/** rwk,` for scratch_dir = %s to %s", pf->dom.name,
           SP_SCRATCH_DEFAULT, scratch, scratch, SP_APPARMOR_RULE);
  }
  if (pf->dom.confined_selinux)
    warn(pf, "SELinux confines the QEMU of %s: libvirt labels the scratch files, but QEMU "
         "creates the job's socket in a directory below %s, which must carry a type QEMU may "
         "create sockets in (docs/install.md, \"SELinux\")", pf->dom.name, SP_RUN_DIR);
}

static void check_job(virDomainPtr dom, struct preflight *pf)
{
  virDomainJobInfo ji;
  if (virDomainGetJobInfo(dom, &ji) == 0 && ji.type != VIR_DOMAIN_JOB_NONE)
    refuse(pf, "another job is running on %s (a backup or migration): wait for it, or end a "
           "leftover backup with `virsh domjobabort %s`", pf->dom.name, pf->dom.name);
}

/* Can QEMU's user read the server key?  QEMU opens it itself (libvirt
 * passes only the directory) when the job starts, inside the pause, and a
 * key it cannot read fails virDomainBackupBegin there.  Group read by a
 * group other than QEMU's own may still work (a supplementary group), so
 * only a key that no permission opens to QEMU's user is refused. */
static void check_server_key(struct sp_host *h, const struct sp_file_info *key, bool tcp,
                             struct preflight *pf, char *why, size_t size)
{
  uid_t quid;
  gid_t qgid;
  struct sp_err ignored = { 0 };
  if (h->ops->ids(h, pf->qc.user, pf->qc.group, &quid, &qgid, &ignored) < 0 || quid == 0)
    return;
  mode_t m = key->mode;
  if ((m & 04) || (key->uid == quid && (m & 0400)) || (key->gid == qgid && (m & 040)))
    return;
  if (m & 040) {
    if (tcp)
      warn(pf, "%s is readable by group %s only: QEMU (user %s) reads it when a "
           "transport = tcp job starts, so %s must be in group %s", key->path, key->group,
           pf->qc.user, pf->qc.user, key->group);
    return;
  }
  snprintf(why, size, "QEMU's user %s on %s cannot read the NBD TLS key %s (%s:%s mode %04o), "
           "which QEMU opens itself when the backup job starts: `chgrp %s %s; chmod 0640 %s` "
           "there", pf->qc.user, h->name, key->path, key->owner, key->group, (unsigned)m,
           pf->qc.group, key->path, key->path);
}

/* The hypervisor's side of transport = tcp: libvirt's backup TLS
 * directory (qemu.conf), read by QEMU at every job start. */
static void check_tls_server(struct sp_host *h, const char *nbd_host, bool tcp,
                             struct preflight *pf, char *why, size_t size)
{
  static const char *const files[] = { "ca-cert.pem", "server-cert.pem", "server-key.pem" };
  const char *dir = pf->qc.backup_tls_dir;
  for (size_t i = 0; i < 3 && !why[0]; i++) {
    _cleanup_free_ char *p = sp_path_join(dir, files[i]);
    struct sp_file_info fi = { 0 };
    struct sp_err ignored = { 0 };
    if (!p)
      snprintf(why, size, "out of memory");
    else if (h->ops->file_info(h, p, &fi, &ignored) < 0 || !fi.exists)
      snprintf(why, size, "the hypervisor %s has no NBD TLS certificate %s (or this user cannot "
               "see it): put ca-cert.pem (the CA), server-cert.pem (issued by it for the name "
               "%s) and server-key.pem in %s, or name another directory with "
               "backup_tls_x509_cert_dir in its qemu.conf and restart libvirtd "
               "(docs/install.md, \"NBD over TLS\")", h->name, p, nbd_host, dir);
    else if (i == 2)
      check_server_key(h, &fi, tcp, pf, why, size);
    sp_file_info_free(&fi);
  }
}

/* This machine's side: the copier's client certificate (libvirt's
 * backup_tls_x509_verify defaults to 1: QEMU ends a handshake without
 * one), in libnbd's file names. */
static void check_tls_client(const char *dir, char *why, size_t size)
{
  static const char *const files[] = { "ca-cert.pem", "client-cert.pem", "client-key.pem" };
  for (size_t i = 0; i < 3 && !why[0]; i++) {
    _cleanup_free_ char *p = sp_path_join(dir, files[i]);
    if (!p)
      snprintf(why, size, "out of memory");
    else if (access(p, R_OK) != 0)
      snprintf(why, size, "this machine has no NBD TLS client certificate: %s is %s; put "
               "ca-cert.pem (the CA of the hypervisor's certificates), client-cert.pem (issued "
               "by it for this machine) and client-key.pem in %s, or set tls_client_dir to "
               "where they are (docs/install.md, \"NBD over TLS\")", p,
               errno == ENOENT ? "missing" : "not readable by this user", dir);
  }
}

/* How the NBD export reaches the copier.  Both ends of transport = tcp
 * are reported (check shows them whatever the transport); only tcp
 * refuses without them. */
static void check_transport(struct sp_host *h, const struct sp_config *cfg, struct preflight *pf)
{
  bool tcp = sp_config_is(cfg, SP_KEY_TRANSPORT, "tcp");
  char server[1024] = "", client[1024] = "";
  check_tls_server(h, nbd_tcp_host(cfg, h), tcp, pf, server, sizeof server);
  check_tls_client(sp_config_str(cfg, SP_KEY_TLS_CLIENT_DIR), client, sizeof client);
  pf->tls_ready = !server[0] && !client[0];
  if (!tcp)
    return;
  if (server[0])
    refuse(pf, "transport = tcp: %s", server);
  if (client[0])
    refuse(pf, "transport = tcp: %s", client);
}

/* libvirt 9.0 names the NVRAM of <os firmware='efi'> only in the live
 * XML; a shut-off VM's is where libvirt makes it at the first start. */
static void offline_nvram_path(struct preflight *pf)
{
  free(pf->dom.nvram.path);
  pf->dom.nvram.path = sp_xasprintf("%s/%s_VARS.fd", SP_LIBVIRT_NVRAM_DIR, pf->dom.name);
  pf->dom.nvram.type = SP_NVRAM_FILE;
}

int preflight_run(virDomainPtr dom, const struct sp_config *cfg, struct sp_host *h,
                  struct preflight *pf,
                  struct sp_err *e)
{
  memset(pf, 0, sizeof *pf);
  const char *name = virDomainGetName(dom);
  int reason;
  if (virDomainGetState(dom, &pf->state, &reason, 0) < 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot read the state of %s: %s",
                      name, virt_errmsg());
  if (virt_xml(dom, 0, &pf->xml, e) < 0 ||
      sp_domain_parse(pf->xml, strlen(pf->xml), &pf->dom, e) < 0 ||
      sp_host_qemu_conf_read(h, SP_QEMU_CONF_PATH, &pf->qc, e) < 0)
    return -1;

  pf->offline = pf->state == VIR_DOMAIN_SHUTOFF;
  if (pf->offline && sp_config_is(cfg, SP_KEY_OFFLINE, "skip"))
    refuse(pf, "domain %s is shut off and its policy says offline = skip (%s); --set "
           "offline=backup takes an offline point anyway", pf->dom.name,
           cfg->source[SP_KEY_OFFLINE]);
  if (pf->offline && pf->dom.firmware_efi && pf->dom.nvram.type == SP_NVRAM_NONE)
    offline_nvram_path(pf);
  if (!pf->offline && pf->state != VIR_DOMAIN_RUNNING && pf->state != VIR_DOMAIN_PAUSED &&
      pf->state != VIR_DOMAIN_BLOCKED)
    refuse(pf, "domain %s is %s: a backup needs it running or paused", pf->dom.name,
           virt_state_name(pf->state));
  if (check_disks(dom, pf, e) < 0)
    return -1;
  check_nvram(h, cfg, pf, e);
  check_tpm(h, &pf->dom, cfg, pf, e);
  if (e->code)
    return -1;
  /* An offline point's vCPUs never run: nothing to freeze, no job yet. */
  if (!pf->offline) {
    check_agent(dom, cfg, pf);
    check_job(dom, pf);
  }
  check_transport(h, cfg, pf);
  check_qemu_access(h, cfg, pf, e);
  /* A Ceph pool is checked when the run connects and locks the VM there. */
  if (strncmp(sp_config_str(cfg, SP_KEY_TARGET), "rbd:", 4) != 0) {
    check_writable_dir(pf, "target", sp_config_str(cfg, SP_KEY_TARGET));
    check_trusted_target(pf, sp_config_str(cfg, SP_KEY_TARGET));
  }
  /* Scratch files live on the hypervisor: a remote one says so when the
   * job's directories are made. */
  if (!h->remote) {
    check_writable_dir(pf, "scratch_dir", sp_config_str(cfg, SP_KEY_SCRATCH_DIR));
    check_scratch_space(pf, sp_config_str(cfg, SP_KEY_SCRATCH_DIR));
  }
  return 0;
}

void preflight_free(struct preflight *pf)
{
  sp_strv_free(&pf->refusals);
  sp_strv_free(&pf->warnings);
  free(pf->disks);
  free(pf->xml);
  sp_domain_free(&pf->dom);
  sp_file_info_free(&pf->nvram);
  sp_tpm_location_free(&pf->tpm);
  sp_qemu_conf_free(&pf->qc);
  memset(pf, 0, sizeof *pf);
}

size_t preflight_ndisks_copied(const struct preflight *pf)
{
  size_t n = 0;
  for (size_t i = 0; i < pf->ndisks; i++)
    n += !pf->disks[i].skip;
  return n;
}
