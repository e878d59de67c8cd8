/* stillpoint check DOMAIN: the preflight, printed.  Touches nothing in
 * the VM; exit 0 when a backup could run, 3 with what to do otherwise.
 * A Ceph target is reached as a backup first reaches it (connected, the
 * pool opened, the VM's lock read); its points are not read: verify
 * checks points. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "hypervisor.h"
#include "commands.h"
#include "nbd_tcp.h"
#include "own_dirs.h"
#include "preflight.h"
#include "rbd_target.h"
#include "strv.h"
#include "virt.h"
#include "xalloc.h"

static const char usage[] =
  "usage: stillpoint check DOMAIN [-c URI] [--ssh-key FILE] [--json] [--config FILE]\n"
  "                        [--set key=value]\n"
  "Shows what a backup point of DOMAIN would capture, and refuses (exit 3)\n"
  "with what to do when a backup could not run.\n";

static void human_size(unsigned long long n, char *buf, size_t size)
{
  static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* stillpoint's own directories on the hypervisor, as they are now: made at
 * first use, and repaired by any run as root (own_dirs.h). */
static const char *own_dir_state(struct sp_host *h, const struct sp_own_dir *d,
                                 struct sp_file_info *fi, char *buf, size_t size)
{
  struct sp_err ignored = { 0 };
  if (h->ops->file_info(h, d->path, fi, &ignored) < 0 || !fi->exists)
    return "missing: made at first use";
  if (!fi->owner[0])
    return "cannot be examined by this user";
  if (fi->mode == d->mode && fi->uid == 0 && fi->gid == 0)
    return "ok";
  snprintf(buf, size, "WRONG (%s:%s %04o): repaired by the next run as root", fi->owner,
           fi->group, (unsigned)fi->mode);
  return buf;
}

static void print_dirs(struct sp_host *h)
{
  size_t n;
  const struct sp_own_dir *d = sp_own_dirs(&n);
  for (size_t i = 0; i < n; i++) {
    struct sp_file_info fi = { 0 };
    char buf[256];
    printf("%s %-28s %04o root:root  %s\n", i ? "        " : "dirs    ", d[i].path,
           (unsigned)d[i].mode, own_dir_state(h, &d[i], &fi, buf, sizeof buf));
    sp_file_info_free(&fi);
  }
}

static json_object *dirs_json(struct sp_host *h)
{
  size_t n;
  const struct sp_own_dir *d = sp_own_dirs(&n);
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++) {
    struct sp_file_info fi = { 0 };
    char buf[256];
    const char *state = own_dir_state(h, &d[i], &fi, buf, sizeof buf);
    json_object *o = json_object_new_object();
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", (unsigned)d[i].mode);
    json_object_object_add(o, "path", json_object_new_string(d[i].path));
    json_object_object_add(o, "mode", json_object_new_string(mode));
    json_object_object_add(o, "what", json_object_new_string(d[i].what));
    json_object_object_add(o, "state", json_object_new_string(state));
    json_object_array_add(a, o);
    sp_file_info_free(&fi);
  }
  return a;
}

/* The target as a backup would meet it: for a Ceph pool, whether it was
 * reached and who holds the VM's lock there. */
struct target_check {
  const char *target;
  bool ceph, reached;
  char holder[SP_RADOS_HOLDER_MAX + 1]; /* "" when nobody holds the lock */
};

/* Connects with the policy's Ceph identity and client op timeouts (a dead
 * cluster fails after ceph_timeout_s, not never), opens the pool and the
 * VM's store, reads the lock: what a backup does before it writes.
 * Nothing is written.  Unreachable is a refusal; a held lock a warning
 * (a lease runs out by itself; the backup names the holder). */
static void check_ceph(struct target_check *tc, struct preflight *pf,
                       const struct sp_config *cfg, const struct sp_log *log)
{
  tc->target = sp_config_str(cfg, SP_KEY_TARGET);
  if (!(tc->ceph = rbd_target_is(tc->target)) || !pf->dom.uuid)
    return;
  struct rbd_target t = { 0 };
  struct sp_err e = { 0 };
  char client[128];
  if (rbd_target_connect(&t, cfg, NULL, log, &e) < 0 ||
      rbd_target_open_store(&t, pf->dom.uuid, &e) < 0 ||
      sp_rados_lock_holder(&t.store, tc->holder, sizeof tc->holder, client, sizeof client,
                           &e) < 0)
    sp_strv_push_take(&pf->refusals,
                      sp_xasprintf("target %s cannot be reached: %s (ceph_conf, ceph_user, "
                                   "ceph_keyring and ceph_timeout_s say how; "
                                   "stillpoint.conf(5))", tc->target, e.msg));
  else
    tc->reached = true;
  if (tc->holder[0])
    sp_strv_push_take(&pf->warnings,
                      sp_xasprintf("the VM's lock in %s is held by %s (%s): a backup now is "
                                   "refused until that run ends or its lease runs out",
                                   tc->target, tc->holder, client));
  rbd_target_close(&t);
}

static void print_human(const struct preflight *pf, const struct target_check *tc,
                        const struct sp_config *cfg, struct sp_host *host)
{
  printf("domain   %s (%s) %s\n", pf->dom.name, pf->dom.uuid ? pf->dom.uuid : "?",
         virt_state_name(pf->state));
  if (pf->offline)
    printf("offline  %s (offline = %s, %s)\n",
           sp_config_is(cfg, SP_KEY_OFFLINE, "skip")
             ? "not backed up while shut off"
             : "an offline point: started paused for the job (its vCPUs never run), NVRAM and "
               "TPM read before the start, stopped again",
           sp_config_str(cfg, SP_KEY_OFFLINE), cfg->source[SP_KEY_OFFLINE]);
  printf("disks\n");
  for (size_t i = 0; i < pf->ndisks; i++) {
    const struct pf_disk *d = &pf->disks[i];
    if (d->skip) {
      printf("  %-5s skipped: %s\n", d->disk->target, d->skip);
      continue;
    }
    char size[32];
    human_size(d->capacity, size, sizeof size);
    printf("  %-5s %-6s %10s  %s  %s\n", d->disk->target,
           d->disk->format ? d->disk->format : "?", size,
           d->disk->source ? d->disk->source : "(network)",
           d->full_only ? "full only (no dirty bitmap)" : "incremental (dirty bitmaps)");
  }
  const struct sp_nvram *nv = &pf->dom.nvram;
  if (nv->type == SP_NVRAM_NONE)
    printf("nvram    none\n");
  else if (pf->nvram.path && pf->nvram.owner[0])
    printf("nvram    %s  %lld bytes  %s:%s %04o%s\n", pf->nvram.path, pf->nvram.size,
           pf->nvram.owner, pf->nvram.group, (unsigned)pf->nvram.mode,
           pf->capture_nvram ? "" : "  (not captured)");
  else
    printf("nvram    %s (not captured)\n", nv->path ? nv->path : "(network)");
  const struct sp_tpm *t = &pf->dom.tpm;
  if (t->backend == SP_TPM_NONE)
    printf("tpm      none\n");
  else if (t->backend == SP_TPM_PASSTHROUGH)
    printf("tpm      passthrough %s: nothing to capture\n", t->device_path ? t->device_path : "");
  else if (pf->tpm.state_dir)
    printf("tpm      %s emulator (%s)  %s  %s:%s %04o  %zu file%s  %s%s%s\n",
           t->version, t->model ? t->model : "?", pf->tpm.state_dir,
           pf->tpm.dir.owner[0] ? pf->tpm.dir.owner : "?",
           pf->tpm.dir.group[0] ? pf->tpm.dir.group : "?", (unsigned)pf->tpm.dir.mode,
           pf->tpm.nfiles, pf->tpm.nfiles == 1 ? "" : "s",
           t->secret_uuid ? "encrypted, secret " : "not encrypted",
           t->secret_uuid ? t->secret_uuid : "", pf->capture_tpm ? "" : "  (not captured)");
  if (sp_config_is(cfg, SP_KEY_TRANSPORT, "tcp"))
    printf("nbd      TLS on %s port %ld-%ld (transport = tcp); certificates %s: server in %s, "
           "client in %s\n", nbd_tcp_host(cfg, host), sp_config_int(cfg, SP_KEY_NBD_PORT_MIN),
           sp_config_int(cfg, SP_KEY_NBD_PORT_MAX), pf->tls_ready ? "ready" : "NOT ready",
           pf->qc.backup_tls_dir, sp_config_str(cfg, SP_KEY_TLS_CLIENT_DIR));
  else
    printf("nbd      %s; certificates for transport = tcp %s (server in %s, client in %s)\n",
           host->remote ? "through an SSH tunnel of the job's unix socket"
                        : "the job's unix socket on this machine",
           pf->tls_ready ? "ready" : "not ready", pf->qc.backup_tls_dir,
           sp_config_str(cfg, SP_KEY_TLS_CLIENT_DIR));
  printf("qemu     runs as %s; confined by %s\n", pf->qemu.who,
         pf->dom.confined_apparmor ? (pf->apparmor_rule ? "AppArmor (stillpoint's rule included)"
                                                        : "AppArmor (stillpoint's rule MISSING)")
         : pf->dom.confined_selinux ? "SELinux"
                                    : "no AppArmor or SELinux label");
  if (tc->ceph)
    printf("target   %s  Ceph pool %s%s%s\n", tc->target,
           tc->reached ? "reached" : "NOT reached", tc->reached ? ", VM's lock " : "",
           !tc->reached ? "" : tc->holder[0] ? "held" : "free");
  else
    printf("target   %s  directory\n", tc->target);
  print_dirs(host);
  printf("agent    %s\n", !pf->dom.agent_configured  ? "not configured"
                          : pf->dom.agent_connected ? "configured, connected"
                                                    : "configured, not connected");
  for (size_t i = 0; i < pf->warnings.n; i++)
    printf("warning  %s\n", pf->warnings.v[i]);
  for (size_t i = 0; i < pf->refusals.n; i++)
    printf("refused  %s\n", pf->refusals.v[i]);
  printf("result   %s\n", pf->refusals.n ? "a backup cannot run" : "a backup can run");
}

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *file_json(const struct sp_file_info *fi)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "path", jstr(fi->path));
  json_object_object_add(o, "exists", json_object_new_boolean(fi->exists));
  json_object_object_add(o, "readable", json_object_new_boolean(fi->readable));
  json_object_object_add(o, "owner", jstr(fi->owner[0] ? fi->owner : NULL));
  json_object_object_add(o, "group", jstr(fi->group[0] ? fi->group : NULL));
  char mode[8];
  snprintf(mode, sizeof mode, "%04o", (unsigned)fi->mode);
  json_object_object_add(o, "mode", jstr(mode));
  json_object_object_add(o, "size", json_object_new_int64(fi->size));
  return o;
}

static json_object *strings_json(const struct sp_strv *s)
{
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < s->n; i++)
    json_object_array_add(a, jstr(s->v[i]));
  return a;
}

static void print_json(const struct preflight *pf, const struct target_check *tc,
                       const struct sp_config *cfg, struct sp_host *host)
{
  json_object *o = json_object_new_object();
  json_object *tj = json_object_new_object();
  json_object_object_add(tj, "name", jstr(tc->target));
  json_object_object_add(tj, "kind", jstr(tc->ceph ? "ceph" : "directory"));
  if (tc->ceph) {
    json_object_object_add(tj, "reached", json_object_new_boolean(tc->reached));
    json_object_object_add(tj, "lock_holder", jstr(tc->holder[0] ? tc->holder : NULL));
  }
  json_object_object_add(o, "domain", jstr(pf->dom.name));
  json_object_object_add(o, "uuid", jstr(pf->dom.uuid));
  json_object_object_add(o, "state", jstr(virt_state_name(pf->state)));
  json_object_object_add(o, "offline", pf->offline ? jstr(sp_config_str(cfg, SP_KEY_OFFLINE))
                                                   : NULL);
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < pf->ndisks; i++) {
    const struct pf_disk *d = &pf->disks[i];
    json_object *j = json_object_new_object();
    json_object_object_add(j, "target", jstr(d->disk->target));
    json_object_object_add(j, "device", jstr(d->disk->device));
    json_object_object_add(j, "source", jstr(d->disk->source));
    json_object_object_add(j, "format", jstr(d->disk->format));
    json_object_object_add(j, "skipped", jstr(d->skip));
    if (!d->skip) {
      json_object_object_add(j, "size", json_object_new_int64((int64_t)d->capacity));
      json_object_object_add(j, "bitmaps", json_object_new_boolean(!d->full_only));
    }
    json_object_array_add(disks, j);
  }
  json_object_object_add(o, "disks", disks);
  if (pf->dom.nvram.type != SP_NVRAM_NONE) {
    json_object *n = pf->nvram.path ? file_json(&pf->nvram) : json_object_new_object();
    static const char *const types[] = { "none", "file", "block", "network" };
    json_object_object_add(n, "type", jstr(types[pf->dom.nvram.type]));
    json_object_object_add(n, "captured", json_object_new_boolean(pf->capture_nvram));
    json_object_object_add(o, "nvram", n);
  }
  const struct sp_tpm *t = &pf->dom.tpm;
  if (t->backend != SP_TPM_NONE) {
    json_object *j = pf->tpm.state_dir ? file_json(&pf->tpm.dir) : json_object_new_object();
    json_object_object_add(j, "backend", jstr(t->backend == SP_TPM_EMULATOR      ? "emulator"
                                              : t->backend == SP_TPM_PASSTHROUGH ? "passthrough"
                                                                                 : "other"));
    json_object_object_add(j, "version", jstr(t->version));
    json_object_object_add(j, "model", jstr(t->model));
    json_object_object_add(j, "encryption_secret", jstr(t->secret_uuid));
    json_object_object_add(j, "files", json_object_new_int64((int64_t)pf->tpm.nfiles));
    json_object_object_add(j, "captured", json_object_new_boolean(pf->capture_tpm));
    json_object_object_add(o, "tpm", j);
  }
  json_object *a = json_object_new_object();
  json_object_object_add(a, "configured", json_object_new_boolean(pf->dom.agent_configured));
  json_object_object_add(a, "connected", json_object_new_boolean(pf->dom.agent_connected));
  json_object_object_add(o, "agent", a);
  json_object *n = json_object_new_object();
  json_object_object_add(n, "host", jstr(host->name));
  json_object_object_add(n, "remote", json_object_new_boolean(host->remote));
  json_object_object_add(n, "transport", jstr(sp_config_str(cfg, SP_KEY_TRANSPORT)));
  json_object_object_add(n, "nbd_host", jstr(nbd_tcp_host(cfg, host)));
  json_object_object_add(n, "tls_dir", jstr(pf->qc.backup_tls_dir));
  json_object_object_add(n, "tls_client_dir", jstr(sp_config_str(cfg, SP_KEY_TLS_CLIENT_DIR)));
  json_object_object_add(n, "tls_ready", json_object_new_boolean(pf->tls_ready));
  json_object_object_add(o, "hypervisor", n);
  json_object *q = json_object_new_object();
  json_object_object_add(q, "runs_as", jstr(pf->qemu.who));
  json_object_object_add(q, "uid", json_object_new_int64(pf->qemu.uid));
  json_object_object_add(q, "gid", json_object_new_int64(pf->qemu.gid));
  json_object_object_add(q, "confinement", jstr(pf->dom.confined_apparmor  ? "apparmor"
                                                : pf->dom.confined_selinux ? "selinux"
                                                                           : "none"));
  if (pf->dom.confined_apparmor)
    json_object_object_add(q, "apparmor_rule", json_object_new_boolean(pf->apparmor_rule));
  json_object_object_add(o, "qemu", q);
  json_object_object_add(o, "target", tj);
  json_object_object_add(o, "directories", dirs_json(host));
  json_object_object_add(o, "warnings", strings_json(&pf->warnings));
  json_object_object_add(o, "refusals", strings_json(&pf->refusals));
  json_object_object_add(o, "ok", json_object_new_boolean(pf->refusals.n == 0));
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
}

int cmd_check(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct sp_config cfg = { 0 };
  struct preflight pf = { 0 };
  struct hypervisor hv = { 0 };
  struct target_check tc = { 0 };
  _cleanup_dom_ virDomainPtr dom = NULL;
  int rc;

  if (cli_parse(&c, argc, argv, NULL, NULL, NULL, usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "check needs one DOMAIN\n%s", usage)) ||
      cli_load_config(&c, c.args[0], &cfg, &e) < 0 || hypervisor_open(&hv, &c, &cfg, &e) < 0 ||
      virt_lookup(hv.conn, c.args[0], &dom, &e) < 0 ||
      preflight_run(dom, &cfg, &hv.host, &pf, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  check_ceph(&tc, &pf, &cfg, &c.log);
  if (c.json)
    print_json(&pf, &tc, &cfg, &hv.host);
  else
    print_human(&pf, &tc, &cfg, &hv.host);
  for (size_t i = 0; i < pf.refusals.n; i++)
    sp_error(&c.log, "%s", pf.refusals.v[i]);
  rc = pf.refusals.n ? SP_EXIT_PREFLIGHT : SP_EXIT_OK;
out:
  preflight_free(&pf);
  if (dom)
    virDomainFree(steal_pointer(&dom));
  hypervisor_close(&hv);
  sp_config_free(&cfg);
  cli_free(&c);
  return rc;
}
