/* The store keeps one rule the hook relies on: while a VM is off, its
 * newest snapshot is the state on disk (prepare compares with it, and
 * recovers from it).  So a restore saves the state it replaces (unless
 * the store has it already), puts the snapshot back, and records what
 * is now on disk as the newest snapshot. */
#include "snapshot_restore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "qemu_conf.h"
#include "state_install.h"
#include "state_locator.h"
#include "state_snapshots.h"
#include "xalloc.h"

void snapshot_restore_result_free(struct snapshot_restore_result *r)
{
  free(r->id);
  free(r->saved_as);
  free(r->tpm_dir);
  free(r->nvram_path);
  memset(r, 0, sizeof *r);
}

/* Where the snapshot's TPM state and NVRAM go for this domain now. */
static int plan(const struct snapshot_restore_args *a, const struct sp_snapshot *t,
                struct snapshot_restore_result *r, struct sp_err *e)
{
  const struct sp_domain *d = a->dom;
  if (t->has_tpm && d->tpm.backend != SP_TPM_EMULATOR)
    sp_warn(a->log, "%s has no emulated TPM now: the TPM state of snapshot %s is not restored",
            d->name, t->id);
  if (t->has_tpm && d->tpm.backend == SP_TPM_EMULATOR) {
    const char *sub = sp_tpm_subdir(d->tpm.version);
    if (!sub || strcmp(sub, t->tpm_subdir) != 0)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "snapshot %s holds a %s state, but the TPM of %s "
                        "is version %s: not restoring", t->id, t->tpm_subdir, d->name,
                        d->tpm.version ? d->tpm.version : "?");
    struct sp_tpm_location loc;
    if (sp_tpm_locate(d, SP_SWTPM_ROOT, &loc, e) < 0)
      return -1;
    r->tpm_dir = steal_pointer(&loc.state_dir);
    sp_tpm_location_free(&loc);
  }
  /* libvirt 9.0 keeps the path of <os firmware='efi'> NVRAM only in the
   * live XML: a shut-off VM's comes from the snapshot. */
  const struct sp_nvram *nv = &d->nvram;
  const char *path = nv->type == SP_NVRAM_FILE && nv->path ? nv->path : t->nvram_path;
  if (t->has_nvram && (t->nvram_block || nv->type == SP_NVRAM_BLOCK ||
                       nv->type == SP_NVRAM_NETWORK))
    sp_warn(a->log, "%s: NVRAM on a block device or the network is not restored by stillpoint: "
            "write nvram/%s of snapshot %s there yourself", d->name, t->nvram.name, t->id);
  else if (t->has_nvram)
    r->nvram_path = sp_xstrdup(path);
  if (!r->tpm_dir && !r->nvram_path)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "snapshot %s has nothing %s can take back", t->id,
                      d->name);
  return 0;
}

/* What is on disk now, in the places the restore will write. */
static int current(const struct snapshot_restore_args *a, const struct snapshot_restore_result *r,
                   struct sp_snapshot *cur, struct sp_err *e)
{
  bool temp;
  if (r->tpm_dir && sp_tpm_presence(r->tpm_dir, NULL) != SP_TPM_DIR_MISSING) {
    if (sp_tree_read(r->tpm_dir, &cur->tpm, &temp, e) < 0)
      return sp_err_prefix(e, "the TPM state to be replaced");
    cur->has_tpm = cur->tpm.n > 0;
    if (sp_snap_stat_sig(r->tpm_dir, &cur->tpm_stat, e) < 0)
      return -1;
    cur->tpm_version = sp_xstrdup(a->dom->tpm.version);
    cur->tpm_subdir = sp_xstrdup(sp_tpm_subdir(a->dom->tpm.version));
    cur->tpm_state_dir = sp_xstrdup(r->tpm_dir);
  }
  struct stat st;
  if (r->nvram_path && stat(r->nvram_path, &st) == 0) {
    if (sp_blob_read(r->nvram_path, &cur->nvram, e) < 0)
      return sp_err_prefix(e, "the NVRAM to be replaced");
    cur->has_nvram = true;
    cur->nvram_path = sp_xstrdup(r->nvram_path);
    cur->nvram_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    cur->nvram_ctime_ns = (long long)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  }
  cur->domain = sp_xstrdup(a->dom->name);
  cur->uuid = sp_xstrdup(a->dom->uuid);
  cur->event = sp_xstrdup("before-restore");
  return 0;
}

/* Whether the parts being restored already hold the snapshot's state. */
static bool already(const struct snapshot_restore_result *r, const struct sp_snapshot *cur,
                    const struct sp_snapshot *t)
{
  bool tpm = !r->tpm_dir || (cur->has_tpm && strcmp(cur->tpm.digest, t->tpm.digest) == 0);
  bool nv = !r->nvram_path || (cur->has_nvram && strcmp(cur->nvram.sha256, t->nvram.sha256) == 0);
  return tpm && nv;
}

static int put_back(const struct snapshot_restore_result *r, const struct sp_snapshot *t,
                    struct sp_err *e)
{
  uid_t uid;
  gid_t gid;
  _cleanup_free_ char *kept = NULL;
  if (r->tpm_dir && (sp_swtpm_ids(SP_QEMU_CONF_PATH, &uid, &gid, e) < 0 ||
                     sp_tpm_install(r->tpm_dir, &t->tpm, uid, gid, false, &kept, e) < 0))
    return -1;
  return r->nvram_path ? sp_nvram_install(r->nvram_path, &t->nvram, e) : 0;
}

int snapshot_restore(const struct snapshot_restore_args *a, struct snapshot_restore_result *r,
                     struct sp_err *e)
{
  memset(r, 0, sizeof *r);
  const char *uuid = a->dom->uuid;
  _cleanup_close_ int lock = -1;
  _cleanup_(sp_snapshot_free) struct sp_snapshot t = { 0 }, cur = { 0 }, newest = { 0 };
  bool found = false;
  if (sp_snap_lock(a->state_dir, uuid, false, &lock, e) < 0 ||
      sp_snap_newest(a->state_dir, uuid, false, &newest, &found, e) < 0)
    return -1;
  if (lock < 0 || !found)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "no snapshots of %s in %s/%s", a->dom->name,
                      a->state_dir, uuid);
  r->id = sp_xstrdup(a->id ? a->id : newest.id);
  if (sp_snap_read(a->state_dir, uuid, r->id, SP_SNAP_ALL, &t, e) < 0 || plan(a, &t, r, e) < 0 ||
      current(a, r, &cur, e) < 0)
    return -1;
  if (already(r, &cur, &t)) {
    r->unchanged = true;
    return 0;
  }
  bool stored = !cur.has_tpm && !cur.has_nvram;
  stored |= sp_snap_same_state(&cur, &newest);
  if (!stored && sp_snap_write(a->state_dir, &cur, e) < 0)
    return sp_err_prefix(e, "saving the state before the restore (nothing was changed)");
  if (!stored)
    r->saved_as = sp_xstrdup(cur.id);
  if (put_back(r, &t, e) < 0)
    return sp_err_prefix(e, "restoring snapshot %s%s%s", r->id,
                         r->saved_as ? "; the state before is snapshot " : "",
                         r->saved_as ? r->saved_as : "");
  if (!r->saved_as && strcmp(newest.id, r->id) == 0)
    return 0;
  free(t.tpm_stat);
  t.tpm_stat = NULL;
  if (r->tpm_dir && sp_snap_stat_sig(r->tpm_dir, &t.tpm_stat, e) < 0)
    sp_err_clear(e); /* only a shortcut for the next start: it hashes instead */
  struct stat st;
  if (r->nvram_path && stat(r->nvram_path, &st) == 0) {
    t.nvram_mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    t.nvram_ctime_ns = (long long)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  }
  free(t.event);
  t.event = sp_xasprintf("restored from %s", r->id);
  if (sp_snap_write(a->state_dir, &t, e) < 0)
    sp_warn(a->log, "%s: restored, but not recorded in the store (%s): the hook will see the "
            "restored state as changed at the next start", a->dom->name, e->msg);
  return 0;
}
