/* stillpoint state list|restore|forget DOMAIN: the TPM/NVRAM snapshots
 * the hook took at VM stop (stillpoint-hook(8)).  Unlike the hook, this may ask
 * libvirt: for the UUID behind a name, and whether the VM runs. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "fsutil.h"
#include "commands.h"
#include "snapshot_restore.h"
#include "state_snapshots.h"
#include "uuid.h"
#include "virt.h"

static const char usage[] =
  "usage: stillpoint state list DOMAIN [--json]\n"
  "       stillpoint state restore DOMAIN [ID]\n"
  "       stillpoint state forget DOMAIN\n"
  "list shows the TPM state and NVRAM snapshots stillpoint-hook took when DOMAIN\n"
  "stopped (DOMAIN may also be the UUID of a domain that no longer exists).\n"
  "restore puts snapshot ID (default: the newest) back as DOMAIN's TPM state and\n"
  "NVRAM; DOMAIN must be shut off. The state it replaces is kept as a snapshot.\n"
  "forget moves DOMAIN's snapshots aside, so that the hook no longer puts a TPM\n"
  "state back that was wiped on purpose; DOMAIN must be shut off.\n"
  "common options: -c URI, --config FILE, --set key=value. See stillpoint-hook(8).\n";

/* The domain behind the argument: by name through libvirt, or a UUID of
 * one libvirt no longer knows (list only). */
struct target {
  struct sp_domain dom; /* from the inactive XML; name and uuid at least */
  bool known;           /* libvirt knows it */
  bool active;
};

static void target_free(struct target *t) { sp_domain_free(&t->dom); }

static int resolve(const struct cli *c, const char *arg, bool need_domain, struct target *t,
                   struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  _cleanup_conn_ virConnectPtr conn = NULL;
  _cleanup_dom_ virDomainPtr dom = NULL;
  _cleanup_free_ char *xml = NULL;
  int rc = virt_open(c->uri, &conn, e);
  if (rc == 0)
    rc = virt_lookup(conn, arg, &dom, e);
  if (rc < 0 && !need_domain && sp_uuid_ok(arg)) {
    sp_err_clear(e);
    t->dom.name = strdup(arg);
    t->dom.uuid = strdup(arg);
    return t->dom.name && t->dom.uuid ? 0 : sp_err_set(e, SP_EXIT_FAILED, "out of memory");
  }
  if (rc < 0 || virt_xml(dom, VIR_DOMAIN_XML_INACTIVE, &xml, e) < 0 ||
      sp_domain_parse(xml, strlen(xml), &t->dom, e) < 0)
    return -1;
  t->known = true;
  t->active = virDomainIsActive(dom) == 1;
  if (!sp_uuid_ok(t->dom.uuid))
    return sp_err_set(e, SP_EXIT_FAILED, "libvirt gave '%s' as the UUID of %s",
                      t->dom.uuid ? t->dom.uuid : "", arg);
  return 0;
}

static json_object *snap_json(const struct sp_snapshot *s, const char *id, const char *err)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(id));
  if (err) {
    json_object_object_add(o, "error", json_object_new_string(err));
    return o;
  }
  json_object_object_add(o, "created", s->created ? json_object_new_string(s->created) : NULL);
  json_object_object_add(o, "event", s->event ? json_object_new_string(s->event) : NULL);
  json_object_object_add(o, "pinned", json_object_new_boolean(s->pinned));
  json_object *tpm = NULL, *nv = NULL;
  if (s->has_tpm) {
    tpm = json_object_new_object();
    json_object_object_add(tpm, "version", json_object_new_string(s->tpm_version));
    json_object_object_add(tpm, "digest", json_object_new_string(s->tpm.digest));
    json_object_object_add(tpm, "files", json_object_new_int((int)s->tpm.n));
  }
  if (s->has_nvram) {
    nv = json_object_new_object();
    json_object_object_add(nv, "path", json_object_new_string(s->nvram_path));
    json_object_object_add(nv, "size", json_object_new_int64((int64_t)s->nvram.len));
    json_object_object_add(nv, "sha256", json_object_new_string(s->nvram.sha256));
  }
  json_object_object_add(o, "tpm", tpm);
  json_object_object_add(o, "nvram", nv);
  return o;
}

static void snap_line(const struct sp_snapshot *s, const char *id, const char *err)
{
  if (err) {
    printf("%-20s unreadable: %s\n", id, err);
    return;
  }
  char tpm[32] = "-", nv[32] = "-";
  if (s->has_tpm)
    snprintf(tpm, sizeof tpm, "%s %.12s", s->tpm_version, s->tpm.digest);
  if (s->has_nvram)
    snprintf(nv, sizeof nv, "%.12s", s->nvram.sha256);
  printf("%-20s %-20s %-17s %-12s %s%s\n", id, s->created ? s->created : "?", tpm, nv,
         s->event ? s->event : "?", s->pinned ? "  PINNED" : "");
}

static int list(const struct cli *c, const struct target *t, const char *state_dir,
                struct sp_err *e)
{
  char **ids = NULL;
  size_t n = 0;
  if (sp_snap_list(state_dir, t->dom.uuid, &ids, &n, e) < 0)
    return -1;
  json_object *o = c->json ? json_object_new_object() : NULL, *arr = json_object_new_array();
  if (!c->json)
    printf("snapshots of %s (%s) in %s/%s\n%-20s %-20s %-17s %-12s %s\n", t->dom.name,
           t->dom.uuid, state_dir, t->dom.uuid, "ID", "TAKEN", "TPM", "NVRAM", "EVENT");
  for (size_t i = 0; i < n; i++) {
    struct sp_snapshot s;
    struct sp_err re = { 0 };
    const char *err = sp_snap_read(state_dir, t->dom.uuid, ids[i], SP_SNAP_META, &s, &re) < 0
                        ? re.msg : NULL;
    if (c->json)
      json_object_array_add(arr, snap_json(&s, ids[i], err));
    else
      snap_line(&s, ids[i], err);
    if (!err)
      sp_snapshot_free(&s);
  }
  if (c->json) {
    json_object_object_add(o, "domain", json_object_new_string(t->dom.name));
    json_object_object_add(o, "uuid", json_object_new_string(t->dom.uuid));
    json_object_object_add(o, "state_dir", json_object_new_string(state_dir));
    json_object_object_add(o, "snapshots", arr);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    if (!n)
      printf("(none)\n");
    json_object_put(arr);
  }
  sp_snap_ids_free(ids, n);
  return 0;
}

static int restore(const struct cli *c, const struct target *t, const char *id,
                   const char *state_dir, struct sp_err *e)
{
  if (t->active)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is running: its TPM state and NVRAM are in "
                      "use. Shut it down first (virsh shutdown %s), then restore", t->dom.name,
                      t->dom.name);
  struct snapshot_restore_args a = { .state_dir = state_dir, .dom = &t->dom, .id = id,
                                  .log = &c->log };
  _cleanup_(snapshot_restore_result_free) struct snapshot_restore_result r = { 0 };
  if (snapshot_restore(&a, &r, e) < 0)
    return -1;
  if (r.unchanged) {
    printf("%s already has the TPM state and NVRAM of snapshot %s: nothing changed\n",
           t->dom.name, r.id);
    return 0;
  }
  printf("restored snapshot %s of %s\n", r.id, t->dom.name);
  if (r.tpm_dir)
    printf("  TPM state -> %s\n", r.tpm_dir);
  if (r.nvram_path)
    printf("  NVRAM     -> %s\n", r.nvram_path);
  if (r.saved_as)
    printf("the state it replaced is snapshot %s (`stillpoint state restore %s %s` goes back)\n",
           r.saved_as, t->dom.name, r.saved_as);
  return 0;
}

/* An intended TPM wipe: the hook's recovery (recover_tpm = auto) would
 * put the newest snapshot back at the next start.  The snapshots are
 * moved aside, not deleted: a wipe by mistake can still be undone. */
static int forget(const struct target *t, const char *state_dir, struct sp_err *e)
{
  if (t->active)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is running: forget is for a VM whose TPM "
                      "state is about to start over. Shut it down first (virsh shutdown %s), "
                      "wipe its TPM state if not done yet, then forget", t->dom.name,
                      t->dom.name);
  _cleanup_close_ int lock = -1;
  _cleanup_free_ char *aside = NULL;
  size_t moved = 0;
  if (sp_snap_lock(state_dir, t->dom.uuid, false, &lock, e) < 0)
    return -1;
  if (lock >= 0 && sp_snap_forget(state_dir, t->dom.uuid, &aside, &moved, e) < 0)
    return aside ? sp_err_prefix(e, "forget %s: some snapshots are in %s", t->dom.name, aside)
                 : -1;
  if (!moved) {
    printf("%s (%s) has no snapshots in %s: nothing to forget; its next start keeps whatever "
           "TPM state it has\n", t->dom.name, t->dom.uuid, state_dir);
    return 0;
  }
  _cleanup_free_ char *vdir = sp_path_join(state_dir, t->dom.uuid);
  printf("forgot %zu snapshot%s of %s: moved to %s\n"
         "its next start keeps the TPM state it has then (libvirt makes a new one if its state "
         "directory is missing or empty); the hook snapshots it again at the next stop.\n"
         "to undo (with %s shut off): mv %s/* %s/\n", moved, moved == 1 ? "" : "s",
         t->dom.name, aside, t->dom.name, aside, vdir ? vdir : "?");
  return 0;
}

int cmd_state(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct sp_config cfg = { 0 };
  _cleanup_(target_free) struct target t = { 0 };
  int rc = cli_parse(&c, argc, argv, NULL, NULL, NULL, usage, &e);
  const char *verb = rc == 0 && c.nargs >= 1 ? c.args[0] : "";
  bool is_list = strcmp(verb, "list") == 0, is_restore = strcmp(verb, "restore") == 0;
  bool is_forget = strcmp(verb, "forget") == 0;
  if (rc == 0 && !((is_list && c.nargs == 2) || (is_restore && (c.nargs == 2 || c.nargs == 3)) ||
                   (is_forget && c.nargs == 2)))
    rc = sp_err_set(&e, SP_EXIT_USAGE, "state needs `list DOMAIN`, `restore DOMAIN [ID]` or "
                    "`forget DOMAIN`\n%s", usage);
  /* forget needs a domain libvirt knows: only then can it tell that the
   * VM is not running. */
  if (rc == 0)
    rc = resolve(&c, c.args[1], !is_list, &t, &e);
  /* vm.d/<name>.conf may move state_dir; a bare UUID has no vm.d file. */
  if (rc == 0)
    rc = cli_load_config(&c, t.known ? t.dom.name : NULL, &cfg, &e);
  if (rc == 0 && is_list)
    rc = list(&c, &t, sp_config_str(&cfg, SP_KEY_STATE_DIR), &e);
  else if (rc == 0 && is_forget)
    rc = forget(&t, sp_config_str(&cfg, SP_KEY_STATE_DIR), &e);
  else if (rc == 0)
    rc = restore(&c, &t, c.nargs == 3 ? c.args[2] : NULL, sp_config_str(&cfg, SP_KEY_STATE_DIR),
                 &e);
  int code = rc < 0 ? cli_fail(&c, &e) : SP_EXIT_OK;
  sp_config_free(&cfg);
  cli_free(&c);
  return code;
}
