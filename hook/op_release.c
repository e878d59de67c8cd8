/* release end: snapshot the TPM state and the NVRAM of a VM that just
 * stopped.  libvirt's stop order is: QEMU exits, swtpm is stopped,
 * "stopped end", labels restored, "release end".  So nothing writes
 * either now, and one read is the state at stop: no re-reads as for a
 * running VM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "context.h"
#include "handoff.h"
#include "hook.h"
#include "incoming.h"
#include "offline_mark.h"
#include "state_install.h"
#include "state_locator.h"
#include "state_snapshots.h"
#include "xalloc.h"

static bool capture_tpm(const struct hook_call *c, const struct hook_ctx *x,
                        struct sp_snapshot *s)
{
  _cleanup_free_ char *dir = hook_tpm_dir(&x->dom);
  if (!dir)
    return false;
  struct sp_err e = { 0 };
  bool temp = false;
  if (sp_tpm_presence(dir, NULL) == SP_TPM_DIR_MISSING) {
    /* A start that failed before libvirt made the directory gets here too. */
    sp_info(&c->log, "%s: no TPM state directory %s at stop: TPM not snapshotted", c->domain,
            dir);
    return false;
  }
  if (sp_tree_read(dir, &s->tpm, &temp, &e) < 0) {
    sp_warn(&c->log, "%s: TPM state not snapshotted: %s", c->domain, e.msg);
    return false;
  }
  /* The fingerprint lets the next start skip hashing an untouched state. */
  if (sp_snap_stat_sig(dir, &s->tpm_stat, &e) < 0)
    sp_debug(&c->log, "%s: %s", c->domain, e.msg);
  if (temp)
    sp_info(&c->log, "%s: a swtpm temp file in %s was left out (swtpm stopped between write "
            "and rename; the state file it would have replaced is the consistent one)",
            c->domain, dir);
  if (!s->tpm.n) {
    sp_warn(&c->log, "%s: TPM state directory %s is empty at stop: TPM not snapshotted",
            c->domain, dir);
    sp_tree_free(&s->tpm);
    return false;
  }
  s->tpm_version = strdup(x->dom.tpm.version);
  s->tpm_subdir = strdup(sp_tpm_subdir(x->dom.tpm.version));
  s->tpm_secret_uuid = x->dom.tpm.secret_uuid ? strdup(x->dom.tpm.secret_uuid) : NULL;
  s->tpm_state_dir = steal_pointer(&dir);
  s->has_tpm = s->tpm_version && s->tpm_subdir;
  return s->has_tpm;
}

static bool capture_nvram(const struct hook_call *c, const struct hook_ctx *x,
                          struct sp_snapshot *s)
{
  const struct sp_nvram *nv = &x->dom.nvram;
  if (nv->type == SP_NVRAM_NONE)
    return false;
  if (nv->type == SP_NVRAM_NETWORK || !nv->path) {
    sp_info(&c->log, "%s: its NVRAM is on the network: not snapshotted", c->domain);
    return false;
  }
  struct sp_err e = { 0 };
  if (sp_blob_map(nv->path, &s->nvram, &e) < 0) {
    sp_warn(&c->log, "%s: NVRAM not snapshotted: %s", c->domain, e.msg);
    return false;
  }
  struct stat st;
  if (stat(nv->path, &st) == 0) {
    s->nvram_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    s->nvram_ctime_ns = (long long)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  }
  s->nvram_block = nv->type == SP_NVRAM_BLOCK;
  s->nvram_path = strdup(nv->path);
  s->has_nvram = s->nvram_path != NULL;
  return s->has_nvram;
}

/* Under the store lock: skip when nothing changed, else write and prune. */
static void store(const struct hook_call *c, const struct hook_ctx *x, struct sp_snapshot *s)
{
  struct sp_err e = { 0 };
  _cleanup_close_ int lock = -1;
  _cleanup_(sp_snapshot_free) struct sp_snapshot last = { 0 };
  bool found = false;
  int removed = 0;
  if (sp_snap_lock(x->state_dir, s->uuid, true, &lock, &e) < 0 ||
      sp_snap_newest(x->state_dir, s->uuid, false, &last, &found, &e) < 0) {
    sp_error(&c->log, "%s: not snapshotted: %s", c->domain, e.msg);
    return;
  }
  if (found && sp_snap_same_state(&last, s)) {
    sp_info(&c->log, "%s: TPM state and NVRAM unchanged since snapshot %s: no new snapshot",
            c->domain, last.id);
    return;
  }
  if (sp_snap_write(x->state_dir, s, &e) < 0) {
    sp_error(&c->log, "%s: not snapshotted: %s", c->domain, e.msg);
    return;
  }
  sp_info(&c->log, "%s: snapshot %s/%s/%s: TPM %s, NVRAM %s", c->domain, x->state_dir, s->uuid,
          s->id, s->has_tpm ? "state" : "none", s->has_nvram ? s->nvram.name : "none");
  long keep = sp_config_int(&x->cfg, SP_KEY_KEEP_SNAPSHOTS);
  if (sp_snap_prune(x->state_dir, s->uuid, keep, &removed, &e) < 0)
    sp_warn(&c->log, "%s: old snapshots not pruned: %s", c->domain, e.msg);
  else if (removed)
    sp_info(&c->log, "%s: removed %d old snapshot%s (keep_snapshots = %ld)", c->domain, removed,
            removed == 1 ? "" : "s", keep);
}

/* snapshot_on_stop: TPM state and NVRAM as the stop left them. */
static void snapshot(struct hook_call *c, const struct hook_ctx *x)
{
  _cleanup_(sp_snapshot_free) struct sp_snapshot s = { 0 };
  bool tpm = capture_tpm(c, x, &s), nvram = capture_nvram(c, x, &s);
  if (!tpm && !nvram) {
    sp_info(&c->log, "%s: no emulated TPM state and no NVRAM file: nothing to snapshot",
            c->domain);
    return;
  }
  s.domain = sp_xstrdup(c->domain);
  s.uuid = sp_xstrdup(x->dom.uuid);
  s.event = sp_xasprintf("%s %s %s", c->op, c->subop, c->extra);
  s.xml = steal_pointer(&c->xml);
  s.xml_len = c->xml_len;
  store(c, x, &s);
}

void hook_release(struct hook_call *c)
{
  if (strcmp(c->extra, "migrated") == 0) {
    sp_info(&c->log, "%s: released after migrating away: no snapshot (its state lives on at "
            "the destination)", c->domain);
    return;
  }
  _cleanup_(hook_ctx_free) struct hook_ctx x = { 0 };
  struct sp_err e = { 0 };
  if (hook_ctx_load(c, &x, &e) < 0) {
    sp_error(&c->log, "%s: release: nothing done: %s", c->domain, e.msg);
    return;
  }
  /* The end of an offline backup's paused start: nothing ran, nothing to
   * snapshot (offline_mark.h). */
  if (sp_offline_mark_active(x.dom.uuid)) {
    sp_info(&c->log, "%s: stopped after an offline backup: no snapshot", c->domain);
    return;
  }
  /* A migration that failed leaves its mark: the next start is a normal one. */
  hook_incoming_take(&x);
  if (sp_config_bool(&x.cfg, SP_KEY_SNAPSHOT_ON_STOP))
    snapshot(c, &x);
  if (sp_config_bool(&x.cfg, SP_KEY_BACKUP_ON_STOP))
    hook_backup_on_stop(c, &x);
}
