/* prepare begin: the first hook of a VM start.  It runs before libvirt
 * creates the TPM state directory and runs swtpm_setup (a brand-new TPM)
 * when that directory is missing or empty (qemuTPMEmulatorCreateStorage):
 * the one moment a lost TPM state can still be put back.  A VM without
 * snapshots is left alone at once, so other VMs' starts pay next to
 * nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "context.h"
#include "hook.h"
#include "incoming.h"
#include "offline_mark.h"
#include "qemu_conf.h"
#include "state_install.h"
#include "state_locator.h"
#include "state_snapshots.h"

static void pin(const struct hook_call *c, const struct hook_ctx *x, const char *id)
{
  struct sp_err e = { 0 };
  if (sp_snap_pin(x->state_dir, x->dom.uuid, id, "the TPM state was lost at a VM start; "
                  "this is the last state before that", &e) < 0)
    sp_warn(&c->log, "%s: snapshot %s not pinned: %s", c->domain, id, e.msg);
}

/* Puts the snapshot back as the TPM state directory, as libvirt makes it. */
static int put_back(const struct hook_ctx *x, const char *dir, const char *id, char **kept,
                    struct sp_err *e)
{
  _cleanup_close_ int lock = -1;
  _cleanup_(sp_snapshot_free) struct sp_snapshot full = { 0 };
  uid_t uid;
  gid_t gid;
  if (sp_snap_lock(x->state_dir, x->dom.uuid, false, &lock, e) < 0 ||
      sp_snap_read(x->state_dir, x->dom.uuid, id, SP_SNAP_TPM, &full, e) < 0 ||
      sp_swtpm_ids(SP_QEMU_CONF_PATH, &uid, &gid, e) < 0)
    return -1;
  return sp_tpm_install(dir, &full.tpm, uid, gid, true, kept, e);
}

static void lost(const struct hook_call *c, const struct hook_ctx *x, const char *dir,
                 enum sp_tpm_presence p, const struct sp_snapshot *last)
{
  bool block = sp_config_bool(&x->cfg, SP_KEY_BLOCK_START_ON_TPM_LOSS);
  bool recover = sp_config_is(&x->cfg, SP_KEY_RECOVER_TPM, "auto");
  const char *then = block ? "The start is refused. Run" : "libvirt now gives the VM a new, "
                             "empty TPM. To get its TPM back: stop the VM, run";
  struct sp_err e = { 0 };
  _cleanup_free_ char *kept = NULL;
  if (block)
    hook_status(c, HOOK_STATUS_BLOCK);
  if (!recover) {
    sp_error(&c->log, "%s: TPM state lost (%s: %s) and recover_tpm = off. %s `stillpoint state "
             "restore %s %s` (its last snapshot, taken %s), then start it again", c->domain,
             sp_tpm_presence_str(p), dir, then, c->domain, last->id, last->created);
    pin(c, x, last->id);
    return;
  }
  if (put_back(x, dir, last->id, &kept, &e) < 0) {
    sp_error(&c->log, "%s: TPM state lost (%s: %s) and NOT put back: %s. %s `stillpoint state "
             "restore %s %s`, then start it again", c->domain, sp_tpm_presence_str(p), dir, e.msg,
             then, c->domain, last->id);
    pin(c, x, last->id);
    return;
  }
  if (block)
    hook_status(c, HOOK_STATUS_OK);
  /* Loud on purpose: a wipe the administrator meant is undone here too,
   * and this line is where they learn how to make it stick. */
  sp_warn(&c->log, "%s: TPM state was lost (%s: %s); put back snapshot %s (taken %s) before "
          "swtpm started. If the TPM was wiped on purpose: shut %s down, wipe its TPM state "
          "again and run `stillpoint state forget %s` before the next start", c->domain,
          sp_tpm_presence_str(p), dir, last->id, last->created, c->domain, c->domain);
  if (kept)
    sp_warn(&c->log, "%s: what the state directory held is kept in %s", c->domain, kept);
}

/* The VM was off since its last snapshot: a different state means
 * something else changed it (or that stop was not snapshotted). */
static void compare_tpm(const struct hook_call *c, const char *dir, const struct sp_snapshot *last)
{
  struct sp_tree t;
  bool temp;
  struct sp_err e = { 0 };
  _cleanup_free_ char *sig = NULL;
  /* Untouched since the snapshot (same names, sizes, inodes and times):
   * equal without reading or hashing, and without loading OpenSSL. */
  if (last->tpm_stat && sp_snap_stat_sig(dir, &sig, &e) == 0 && strcmp(sig, last->tpm_stat) == 0)
    return;
  if (sp_tree_read(dir, &t, &temp, &e) < 0) {
    sp_warn(&c->log, "%s: TPM state not compared with snapshot %s: %s", c->domain, last->id,
            e.msg);
    return;
  }
  if (strcmp(t.digest, last->tpm.digest) != 0)
    sp_warn(&c->log, "%s: TPM state in %s differs from snapshot %s, taken when the VM last "
            "stopped (%s): it changed while the VM was off, or that stop was not snapshotted",
            c->domain, dir, last->id, last->created);
  sp_tree_free(&t);
}

/* NVRAM is only watched: libvirt recreates a missing one from its
 * template, which resets boot entries and Secure Boot variables. */
static void check_nvram(const struct hook_call *c, const struct hook_ctx *x,
                        const struct sp_snapshot *last)
{
  /* libvirt 9.0 fills in the NVRAM path of <os firmware='efi'> only after
   * this hook: the snapshot remembers where it was. */
  const char *path = x->dom.nvram.type == SP_NVRAM_FILE && x->dom.nvram.path
                       ? x->dom.nvram.path
                       : last->nvram_path;
  if (!last->has_nvram || last->nvram_block || !path || strcmp(path, last->nvram_path) != 0)
    return;
  struct stat st;
  if (stat(path, &st) < 0) {
    sp_warn(&c->log, "%s: NVRAM %s is missing before the start (%s): libvirt makes a new one "
            "from its template, with default boot entries and Secure Boot variables. Snapshot "
            "%s has it: `stillpoint state restore %s %s` with the VM off", c->domain, path,
            strerror(errno), last->id, c->domain, last->id);
    return;
  }
  long long mtime = (long long)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  long long ctime = (long long)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  if (last->nvram_mtime_ns && mtime == last->nvram_mtime_ns && ctime == last->nvram_ctime_ns &&
      (size_t)st.st_size == last->nvram.len)
    return; /* untouched since the snapshot: no need to read it */
  struct sp_blob b;
  struct sp_err e = { 0 };
  if (sp_blob_map(path, &b, &e) < 0) {
    sp_warn(&c->log, "%s: NVRAM not compared with snapshot %s: %s", c->domain, last->id, e.msg);
    return;
  }
  if (strcmp(b.sha256, last->nvram.sha256) != 0)
    sp_warn(&c->log, "%s: NVRAM %s differs from snapshot %s, taken when the VM last stopped "
            "(%s): it changed while the VM was off", c->domain, path, last->id, last->created);
  sp_blob_free(&b);
}

void hook_prepare(struct hook_call *c)
{
  _cleanup_(hook_ctx_free) struct hook_ctx x = { 0 };
  _cleanup_(sp_snapshot_free) struct sp_snapshot newest = { 0 }, with_tpm = { 0 };
  _cleanup_free_ char *dir = NULL;
  struct sp_err e = { 0 };
  bool found = false, found_tpm = false;
  if (hook_ctx_load(c, &x, &e) < 0) {
    sp_error(&c->log, "%s: prepare: nothing checked: %s", c->domain, e.msg);
    return;
  }
  /* Not the VM's own start: stillpoint starts it paused for an offline
   * point, and its vCPUs never run (offline_mark.h). */
  if (sp_offline_mark_active(x.dom.uuid)) {
    sp_info(&c->log, "%s: started paused for an offline backup: nothing checked", c->domain);
    return;
  }
  if (sp_snap_newest(x.state_dir, x.dom.uuid, false, &newest, &found, &e) < 0) {
    sp_error(&c->log, "%s: prepare: nothing checked: %s", c->domain, e.msg);
    return;
  }
  if (!found)
    return;
  if (hook_incoming_take(&x)) {
    sp_info(&c->log, "%s: incoming migration: its TPM state and NVRAM come with it, not "
            "checked", c->domain);
    return;
  }
  check_nvram(c, &x, &newest);
  dir = hook_tpm_dir(&x.dom);
  if (!dir)
    return;
  if (!newest.has_tpm &&
      sp_snap_newest(x.state_dir, x.dom.uuid, true, &with_tpm, &found_tpm, &e) < 0) {
    sp_error(&c->log, "%s: prepare: TPM state not checked: %s", c->domain, e.msg);
    return;
  }
  const struct sp_snapshot *last = newest.has_tpm ? &newest : found_tpm ? &with_tpm : NULL;
  if (!last)
    return;
  if (strcmp(sp_tpm_subdir(x.dom.tpm.version), last->tpm_subdir) != 0) {
    sp_info(&c->log, "%s: its TPM is now version %s; snapshot %s holds a %s state: not "
            "checked", c->domain, x.dom.tpm.version, last->id, last->tpm_subdir);
    return;
  }
  enum sp_tpm_presence p = sp_tpm_presence(dir, last->tpm_subdir);
  if (p == SP_TPM_PRESENT)
    compare_tpm(c, dir, last);
  else
    lost(c, &x, dir, p, last);
}
