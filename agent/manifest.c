#include "manifest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cleanup_json.h"
#include "fsutil.h"
#include "point_layout.h"
#include "uuid.h"
#include "xalloc.h"


bool sp_hex64_valid(const char *s)
{
  if (!s || strlen(s) != 64)
    return false;
  for (int i = 0; i < 64; i++)
    if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
      return false;
  return true;
}

bool sp_target_valid(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 32)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
      return false;
  return true;
}

/* ---- writing ------------------------------------------------------- */

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

/* Milliseconds and seconds with 3 decimals: json-c's default %.17g
 * prints 0.040000000000000001 for 0.04. */
/* Durations in ms or s: 1e12 is 31 years of milliseconds, and below
 * 2^53 / 1000 every "%.3f" text reads back as the same double. */
#define SP_MANIFEST_NUM_MAX 1e12

static json_object *jdouble(double d)
{
  char buf[64];
  snprintf(buf, sizeof buf, "%.3f", d);
  return json_object_new_double_s(d, buf);
}

static json_object *jmode(unsigned mode)
{
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return json_object_new_string(buf);
}

static json_object *files_json(const struct sp_manifest_state *s)
{
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < s->nfiles; i++) {
    const struct sp_manifest_file *f = &s->files[i];
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", jstr(f->name));
    json_object_object_add(o, "sha256", jstr(f->sha256));
    json_object_object_add(o, "mode", jmode(f->mode));
    json_object_object_add(o, "size", json_object_new_int64(f->size));
    json_object_array_add(a, o);
  }
  return a;
}

static json_object *state_json(const struct sp_manifest_state *s, bool tpm)
{
  if (!s->present)
    return NULL;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "host_path", jstr(s->host_path));
  json_object_object_add(o, "path", jstr(s->path));
  if (tpm) {
    json_object_object_add(o, "version", jstr(s->version));
    json_object_object_add(o, "encryption_secret", jstr(s->secret_uuid));
  } else {
    json_object_object_add(o, "type", jstr(s->type));
    json_object_object_add(o, "format", jstr(s->format));
    json_object_object_add(o, "template", jstr(s->template_path));
  }
  json_object_object_add(o, "owner", jstr(s->owner));
  json_object_object_add(o, "group", jstr(s->group));
  json_object_object_add(o, "mode", jmode(s->mode));
  json_object_object_add(o, "files", files_json(s));
  return o;
}

static json_object *window_json(const struct sp_manifest_window *w)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "freeze_at", jstr(w->freeze_at));
  json_object_object_add(o, "paused_at", jstr(w->paused_at));
  json_object_object_add(o, "resumed_at", jstr(w->resumed_at));
  json_object_object_add(o, "thawed_at", jstr(w->thawed_at));
  json_object_object_add(o, "pause_ms", jdouble(w->pause_ms));
  json_object_object_add(o, "freeze_ms", jdouble(w->freeze_ms));
  json_object_object_add(o, "frozen", json_object_new_int(w->frozen));
  json_object_object_add(o, "thawed", json_object_new_int(w->thawed));
  json_object_object_add(o, "paused", json_object_new_boolean(w->paused));
  json_object_object_add(o, "consistent", json_object_new_boolean(w->consistent));
  json_object_object_add(o, "capture_reads", json_object_new_int(w->capture_reads));
  return o;
}

static json_object *timings_json(const struct sp_manifest_timings *t)
{
  if (!t->present)
    return NULL;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "prepare_ms", jdouble(t->prepare_ms));
  json_object_object_add(o, "window_ms", jdouble(t->window_ms));
  json_object_object_add(o, "state_ms", jdouble(t->state_ms));
  json_object_object_add(o, "copy_ms", jdouble(t->copy_ms));
  json_object_object_add(o, "job_end_ms", jdouble(t->job_end_ms));
  json_object_object_add(o, "check_ms", jdouble(t->check_ms));
  json_object_object_add(o, "hash_ms", jdouble(t->hash_ms));
  json_object_object_add(o, "fsync_ms", jdouble(t->fsync_ms));
  return o;
}

int sp_manifest_to_json(const struct sp_manifest *m, char **out, struct sp_err *e)
{
  _cleanup_json_ json_object *o = json_object_new_object();
  json_object_object_add(o, "format", json_object_new_int(m->format));
  json_object_object_add(o, "tool", jstr(m->tool));
  json_object_object_add(o, "host", jstr(m->host));
  json_object_object_add(o, "domain", jstr(m->domain));
  json_object_object_add(o, "uuid", jstr(m->uuid));
  json_object_object_add(o, "id", jstr(m->id));
  json_object_object_add(o, "level", jstr(sp_level_name(m->level)));
  json_object_object_add(o, "parent", jstr(m->parent));
  json_object_object_add(o, "full", jstr(m->full));
  json_object_object_add(o, "checkpoint", jstr(m->checkpoint));
  json_object_object_add(o, "parent_checkpoint", jstr(m->parent_checkpoint));
  json_object_object_add(o, "created", jstr(m->created));
  json_object_object_add(o, "offline", json_object_new_boolean(m->offline));
  json_object *disks = json_object_new_array();
  for (size_t i = 0; i < m->ndisks; i++) {
    const struct sp_manifest_disk *d = &m->disks[i];
    json_object *j = json_object_new_object();
    json_object_object_add(j, "target", jstr(d->target));
    json_object_object_add(j, "source", jstr(d->source));
    json_object_object_add(j, "format", jstr(d->format));
    json_object_object_add(j, "size", json_object_new_int64((int64_t)d->size));
    json_object_object_add(j, "level", jstr(sp_level_name(d->level)));
    if (m->format == SP_MANIFEST_FORMAT_RBD) {
      json_object_object_add(j, "rbd_image", jstr(d->rbd_image));
      json_object_object_add(j, "rbd_snapshot", jstr(d->rbd_snapshot));
    } else {
      json_object_object_add(j, "file", jstr(d->file));
      json_object_object_add(j, "parent_file", jstr(d->parent_file));
    }
    json_object_object_add(j, "copier", jstr(d->copier));
    json_object_object_add(j, "image_format", jstr(d->image_format));
    json_object_object_add(j, "bytes_written", json_object_new_int64((int64_t)d->bytes_written));
    json_object_object_add(j, "seconds", jdouble(d->seconds));
    json_object_array_add(disks, j);
  }
  json_object_object_add(o, "disks", disks);
  json_object *sk = json_object_new_array();
  for (size_t i = 0; i < m->nskipped; i++) {
    json_object *j = json_object_new_object();
    json_object_object_add(j, "target", jstr(m->skipped[i].target));
    json_object_object_add(j, "reason", jstr(m->skipped[i].reason));
    json_object_array_add(sk, j);
  }
  json_object_object_add(o, "skipped_disks", sk);
  json_object_object_add(o, "nvram", state_json(&m->nvram, false));
  json_object_object_add(o, "tpm", state_json(&m->tpm, true));
  json_object_object_add(o, "window", window_json(&m->window));
  if (m->timings.present)
    json_object_object_add(o, "timings", timings_json(&m->timings));
  json_object *w = json_object_new_array();
  for (size_t i = 0; i < m->warnings.n; i++)
    json_object_array_add(w, jstr(m->warnings.v[i]));
  json_object_object_add(o, "warnings", w);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
  if (!s) /* json-c's own allocation failed */
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "manifest");
  size_t n = strlen(s);
  *out = sp_xmalloc(n + 2);
  memcpy(*out, s, n);
  memcpy(*out + n, "\n", 2);
  return 0;
}

/* ---- reading ------------------------------------------------------- */

/* A parse position: the JSON path named in errors. */
struct ctx {
  struct sp_err *e;
  char where[128];
  int format;
};

static int bad(struct ctx *c, const char *field, const char *what)
{
  return sp_err_set(c->e, SP_EXIT_FAILED, "manifest.json: %s%s%s: %s", c->where,
                    c->where[0] ? "." : "", field, what);
}

static json_object *field(json_object *o, const char *name)
{
  json_object *v = NULL;
  return json_object_object_get_ex(o, name, &v) ? v : NULL;
}

/* String field: required or optional (null/absent allowed). */
static int get_str(struct ctx *c, json_object *o, const char *name, bool required, char **out)
{
  json_object *v = field(o, name);
  *out = NULL;
  if (!v || json_object_is_type(v, json_type_null))
    return required ? bad(c, name, "missing") : 0;
  if (!json_object_is_type(v, json_type_string))
    return bad(c, name, "not a string");
  const char *s = json_object_get_string(v);
  if (strlen(s) != (size_t)json_object_get_string_len(v))
    return bad(c, name, "contains a NUL byte");
  *out = sp_xstrdup(s);
  return 0;
}

static int get_int(struct ctx *c, json_object *o, const char *name, long long min,
                   long long max, long long *out)
{
  json_object *v = field(o, name);
  if (!v || !json_object_is_type(v, json_type_int))
    return bad(c, name, v ? "not an integer" : "missing");
  errno = 0;
  long long n = json_object_get_int64(v);
  if (errno || n < min || n > max)
    return bad(c, name, "out of range");
  *out = n;
  return 0;
}

static int get_num(struct ctx *c, json_object *o, const char *name, double *out)
{
  json_object *v = field(o, name);
  if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
    return bad(c, name, v ? "not a number" : "missing");
  *out = json_object_get_double(v);
  /* 1e999 parses as infinity, which no writer can put back as JSON; and
   * above SP_MANIFEST_NUM_MAX jdouble()'s "%.3f" would no longer give
   * back the same number (too long for its buffer, or finer than a
   * double's steps), so prune would rewrite a different manifest. */
  if (!(*out >= 0) || !(*out <= SP_MANIFEST_NUM_MAX))
    return bad(c, name, "negative, above 1e12 or not a number");
  return 0;
}

static int get_bool(struct ctx *c, json_object *o, const char *name, bool *out)
{
  json_object *v = field(o, name);
  if (!v || !json_object_is_type(v, json_type_boolean))
    return bad(c, name, v ? "not a boolean" : "missing");
  *out = json_object_get_boolean(v);
  return 0;
}

static int get_mode(struct ctx *c, json_object *o, const char *name, unsigned *out)
{
  _cleanup_free_ char *s = NULL;
  if (get_str(c, o, name, true, &s) < 0)
    return -1;
  char *end;
  unsigned long m = strtoul(s, &end, 8);
  if (!*s || *end || m > 07777)
    return bad(c, name, "not an octal mode");
  *out = (unsigned)m;
  return 0;
}

static int get_array(struct ctx *c, json_object *o, const char *name, json_object **out,
                     size_t max)
{
  json_object *v = field(o, name);
  if (!v || !json_object_is_type(v, json_type_array))
    return bad(c, name, v ? "not an array" : "missing");
  if (json_object_array_length(v) > max)
    return bad(c, name, "too many entries");
  *out = v;
  return 0;
}

/* The one place a manifest's level word becomes enum sp_level. */
static int get_level(struct ctx *c, json_object *o, enum sp_level *out)
{
  _cleanup_free_ char *s = NULL;
  if (get_str(c, o, "level", true, &s) < 0)
    return -1;
  if (sp_level_parse(s, out) < 0)
    return bad(c, "level", "not full, inc or diff");
  return 0;
}

static bool one_of(const char *s, const char *const *choices)
{
  for (; *choices; choices++)
    if (strcmp(s, *choices) == 0)
      return true;
  return false;
}

/* "prefix/<name>" with name a plain file name (or, for TPM, "tpm2"/"tpm1.2"). */
static bool rel_under(const char *path, const char *prefix)
{
  size_t n = strlen(prefix);
  return sp_relpath_ok(path) && strncmp(path, prefix, n) == 0 && path[n] == '/' &&
         sp_name_ok(path + n + 1);
}

/* An overlay's backing file: "../../<point-id>/disks/<file>". */
static bool parent_file_ok(const char *p)
{
  if (strncmp(p, "../../", 6) != 0)
    return false;
  const char *id = p + 6, *slash = strchr(id, '/');
  if (!slash)
    return false;
  _cleanup_free_ char *idc = sp_xstrndup(id, (size_t)(slash - id));
  return sp_point_id_valid(idc) && rel_under(slash + 1, SP_POINT_DISKS_DIR);
}

/* Points written before disks[].image_format: an overlay is qcow2, and
 * so is a full image from stillpoint-copy; any other copier's full image
 * is taken as raw (the documented full-only copier, nbdcopy, writes raw).
 * Never probed: the bytes may be the guest's. */
static const char *inferred_image_format(const struct sp_manifest_disk *d)
{
  if (d->level != SP_LEVEL_FULL || !d->copier)
    return "qcow2";
  const char *cmd = d->copier + strspn(d->copier, " \t");
  size_t word = strcspn(cmd, " \t");
  const char *base = memrchr(cmd, '/', word);
  base = base ? base + 1 : cmd;
  size_t bl = word - (size_t)(base - cmd);
  return bl == strlen("stillpoint-copy") && strncmp(base, "stillpoint-copy", bl) == 0 ? "qcow2"
                                                                                     : "raw";
}

/* An RBD image or snapshot name as stillpoint writes them (the same rule
 * as ceph/rbd_spec.c's sp_rbd_name_ok): [A-Za-z0-9._-], not "." or "..",
 * not starting with '-', at most 200 bytes. */
static bool rbd_name_ok(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > 200 || s[0] == '-' || !strcmp(s, ".") || !strcmp(s, ".."))
    return false;
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* What every disk entry has, in either format: read and checked before
 * the format's own fields. */
static int parse_disk_common(struct ctx *c, json_object *j, struct sp_manifest_disk *d)
{
  long long size, bw;
  if (get_str(c, j, "target", true, &d->target) < 0 ||
      get_str(c, j, "source", false, &d->source) < 0 ||
      get_str(c, j, "format", false, &d->format) < 0 ||
      get_level(c, j, &d->level) < 0 ||
      get_str(c, j, "copier", false, &d->copier) < 0 ||
      get_int(c, j, "size", 0, INT64_MAX, &size) < 0 ||
      get_int(c, j, "bytes_written", 0, INT64_MAX, &bw) < 0 ||
      get_num(c, j, "seconds", &d->seconds) < 0)
    return -1;
  d->size = (unsigned long long)size;
  d->bytes_written = (unsigned long long)bw;
  if (!sp_target_valid(d->target))
    return bad(c, "target", "not a disk target name (letters, digits, '_' and '-')");
  return 0;
}

/* Format 2: where the disk is in Ceph, and nothing of a directory's layout. */
static int parse_rbd_disk(struct ctx *c, json_object *j, struct sp_manifest_disk *d)
{
  if (get_str(c, j, "rbd_image", true, &d->rbd_image) < 0 ||
      get_str(c, j, "rbd_snapshot", true, &d->rbd_snapshot) < 0)
    return -1;
  if (!rbd_name_ok(d->rbd_image))
    return bad(c, "rbd_image", "not an RBD image name");
  if (!rbd_name_ok(d->rbd_snapshot))
    return bad(c, "rbd_snapshot", "not an RBD snapshot name");
  /* Every snapshot is a whole disk: raw, read as raw. */
  d->image_format = sp_xstrdup("raw");
  return 0;
}

static int parse_disk(struct ctx *c, json_object *j, struct sp_manifest_disk *d)
{
  if (parse_disk_common(c, j, d) < 0)
    return -1;
  if (c->format == SP_MANIFEST_FORMAT_RBD)
    return parse_rbd_disk(c, j, d);
  static const char *const image_formats[] = { "qcow2", "raw", NULL };
  if (get_str(c, j, "file", true, &d->file) < 0 ||
      get_str(c, j, "parent_file", false, &d->parent_file) < 0 ||
      get_str(c, j, "image_format", false, &d->image_format) < 0)
    return -1;
  if (!rel_under(d->file, SP_POINT_DISKS_DIR))
    return bad(c, "file", "not a file under disks/ of this point");
  if (d->level == SP_LEVEL_FULL ? d->parent_file != NULL
                                    : !d->parent_file || !parent_file_ok(d->parent_file))
    return bad(c, "parent_file", "must be null for a full disk and ../../<point-id>/disks/<file> "
               "otherwise");
  if (d->image_format && !one_of(d->image_format, image_formats))
    return bad(c, "image_format", "not qcow2 or raw");
  if (d->image_format && d->parent_file && strcmp(d->image_format, "qcow2") != 0)
    return bad(c, "image_format", "an overlay must be qcow2");
  if (!d->image_format)
    d->image_format = sp_xstrdup(inferred_image_format(d));
  return 0;
}

static int parse_files(struct ctx *c, json_object *o, struct sp_manifest_state *s)
{
  json_object *a;
  if (get_array(c, o, "files", &a, 4096) < 0)
    return -1;
  s->nfiles = json_object_array_length(a);
  s->files = sp_xcalloc(s->nfiles ? s->nfiles : 1, sizeof *s->files);
  size_t base = strlen(c->where);
  for (size_t i = 0; i < s->nfiles; i++) {
    json_object *j = json_object_array_get_idx(a, i);
    struct sp_manifest_file *f = &s->files[i];
    snprintf(c->where + base, sizeof c->where - base, ".files[%zu]", i);
    _cleanup_free_ char *sha = NULL;
    long long size;
    if (!json_object_is_type(j, json_type_object))
      return bad(c, "", "not an object");
    if (get_str(c, j, "name", true, &f->name) < 0 || get_str(c, j, "sha256", true, &sha) < 0 ||
        get_mode(c, j, "mode", &f->mode) < 0 || get_int(c, j, "size", 0, INT64_MAX, &size) < 0)
      return -1;
    if (!sp_name_ok(f->name))
      return bad(c, "name", "not a plain file name");
    if (!sp_hex64_valid(sha))
      return bad(c, "sha256", "not 64 lowercase hex digits");
    memcpy(f->sha256, sha, sizeof f->sha256);
    f->size = size;
  }
  c->where[base] = '\0';
  return 0;
}

static int parse_state(struct ctx *c, json_object *root, const char *name,
                       struct sp_manifest_state *s)
{
  json_object *o = field(root, name);
  if (!o || json_object_is_type(o, json_type_null))
    return 0;
  if (!json_object_is_type(o, json_type_object))
    return bad(c, name, "not an object");
  bool tpm = strcmp(name, "tpm") == 0;
  s->present = true;
  snprintf(c->where, sizeof c->where, "%s", name);
  if (get_str(c, o, "host_path", true, &s->host_path) < 0 ||
      get_str(c, o, "path", true, &s->path) < 0 || get_str(c, o, "owner", false, &s->owner) < 0 ||
      get_str(c, o, "group", false, &s->group) < 0 || get_mode(c, o, "mode", &s->mode) < 0 ||
      parse_files(c, o, s) < 0)
    return -1;
  if (tpm) {
    static const char *const versions[] = { "2.0", "1.2", NULL };
    if (get_str(c, o, "version", true, &s->version) < 0 ||
        get_str(c, o, "encryption_secret", false, &s->secret_uuid) < 0)
      return -1;
    if (!one_of(s->version, versions))
      return bad(c, "version", "not 2.0 or 1.2");
    if (s->secret_uuid && !sp_uuid_ok(s->secret_uuid))
      return bad(c, "encryption_secret", "not a UUID");
    const char *want = strcmp(s->version, "2.0") == 0 ? "tpm/tpm2" : "tpm/tpm1.2";
    if (strcmp(s->path, want) != 0)
      return bad(c, "path", "not the tpm/<tpm2|tpm1.2> directory of this point");
  } else {
    static const char *const types[] = { "file", "block", NULL };
    if (get_str(c, o, "type", true, &s->type) < 0 || get_str(c, o, "format", false, &s->format) < 0 ||
        get_str(c, o, "template", false, &s->template_path) < 0)
      return -1;
    if (!one_of(s->type, types))
      return bad(c, "type", "not file or block");
    if (!rel_under(s->path, "nvram"))
      return bad(c, "path", "not a file under nvram/ of this point");
    if (s->nfiles != 1 || strcmp(s->files[0].name, s->path + strlen("nvram/")) != 0)
      return bad(c, "files", "must list exactly the NVRAM file");
  }
  if (s->host_path[0] != '/')
    return bad(c, "host_path", "not an absolute path");
  c->where[0] = '\0';
  return 0;
}

static int parse_window(struct ctx *c, json_object *root, struct sp_manifest_window *w)
{
  json_object *o = field(root, "window");
  if (!o || !json_object_is_type(o, json_type_object))
    return bad(c, "window", o ? "not an object" : "missing");
  snprintf(c->where, sizeof c->where, "window");
  long long frozen, thawed, reads;
  if (get_str(c, o, "freeze_at", false, &w->freeze_at) < 0 ||
      get_str(c, o, "paused_at", false, &w->paused_at) < 0 ||
      get_str(c, o, "resumed_at", false, &w->resumed_at) < 0 ||
      get_str(c, o, "thawed_at", false, &w->thawed_at) < 0 ||
      get_num(c, o, "pause_ms", &w->pause_ms) < 0 || get_num(c, o, "freeze_ms", &w->freeze_ms) < 0 ||
      get_int(c, o, "frozen", 0, 100000, &frozen) < 0 ||
      get_int(c, o, "thawed", 0, 100000, &thawed) < 0 ||
      get_bool(c, o, "paused", &w->paused) < 0 || get_bool(c, o, "consistent", &w->consistent) < 0 ||
      get_int(c, o, "capture_reads", 0, 100000, &reads) < 0)
    return -1;
  w->frozen = (int)frozen;
  w->thawed = (int)thawed;
  w->capture_reads = (int)reads;
  c->where[0] = '\0';
  return 0;
}

/* Optional (older points have none); numbers only, never trusted for
 * anything but display. */
static int parse_timings(struct ctx *c, json_object *root, struct sp_manifest_timings *t)
{
  json_object *o = field(root, "timings");
  if (!o || json_object_is_type(o, json_type_null))
    return 0;
  if (!json_object_is_type(o, json_type_object))
    return bad(c, "timings", "not an object");
  snprintf(c->where, sizeof c->where, "timings");
  if (get_num(c, o, "prepare_ms", &t->prepare_ms) < 0 ||
      get_num(c, o, "window_ms", &t->window_ms) < 0 ||
      get_num(c, o, "state_ms", &t->state_ms) < 0 || get_num(c, o, "copy_ms", &t->copy_ms) < 0 ||
      get_num(c, o, "job_end_ms", &t->job_end_ms) < 0 ||
      get_num(c, o, "check_ms", &t->check_ms) < 0 || get_num(c, o, "hash_ms", &t->hash_ms) < 0 ||
      get_num(c, o, "fsync_ms", &t->fsync_ms) < 0)
    return -1;
  t->present = true;
  c->where[0] = '\0';
  return 0;
}

static int parse_root(struct ctx *c, json_object *o, struct sp_manifest *m)
{
  long long format;
  if (!json_object_is_type(o, json_type_object))
    return bad(c, "(top)", "not a JSON object");
  if (get_int(c, o, "format", 1, 1000, &format) < 0)
    return -1;
  if (format != SP_MANIFEST_FORMAT && format != SP_MANIFEST_FORMAT_RBD)
    return bad(c, "format", "a version this stillpoint does not know (newer tool?)");
  m->format = c->format = (int)format;
  if (get_str(c, o, "tool", false, &m->tool) < 0 || get_str(c, o, "host", false, &m->host) < 0 ||
      get_str(c, o, "domain", true, &m->domain) < 0 || get_str(c, o, "uuid", true, &m->uuid) < 0 ||
      get_str(c, o, "id", true, &m->id) < 0 || get_level(c, o, &m->level) < 0 ||
      get_str(c, o, "parent", false, &m->parent) < 0 || get_str(c, o, "full", false, &m->full) < 0 ||
      get_str(c, o, "checkpoint", false, &m->checkpoint) < 0 ||
      get_str(c, o, "parent_checkpoint", false, &m->parent_checkpoint) < 0 ||
      get_str(c, o, "created", true, &m->created) < 0 ||
      (field(o, "offline") && get_bool(c, o, "offline", &m->offline) < 0))
    return -1;
  if (!sp_uuid_ok(m->uuid))
    return bad(c, "uuid", "not a UUID");
  if (!sp_point_id_valid(m->id))
    return bad(c, "id", "not a point id (e.g. 20261126T063000Z-full)");
  bool full = m->level == SP_LEVEL_FULL;
  if (full ? m->parent != NULL : !m->parent || !sp_point_id_valid(m->parent))
    return bad(c, "parent", "must be null for a full point and a point id otherwise");
  if (m->full && !sp_point_id_valid(m->full))
    return bad(c, "full", "not a point id");

  json_object *a;
  if (get_array(c, o, "disks", &a, 1024) < 0)
    return -1;
  m->ndisks = json_object_array_length(a);
  m->disks = sp_xcalloc(m->ndisks ? m->ndisks : 1, sizeof *m->disks);
  for (size_t i = 0; i < m->ndisks; i++) {
    snprintf(c->where, sizeof c->where, "disks[%zu]", i);
    json_object *j = json_object_array_get_idx(a, i);
    if (!json_object_is_type(j, json_type_object))
      return bad(c, "", "not an object");
    if (parse_disk(c, j, &m->disks[i]) < 0)
      return -1;
    for (size_t k = 0; k < i; k++)
      if (strcmp(m->disks[k].target, m->disks[i].target) == 0)
        return bad(c, "target", "listed twice");
  }
  c->where[0] = '\0';
  if (get_array(c, o, "skipped_disks", &a, 1024) < 0)
    return -1;
  m->nskipped = json_object_array_length(a);
  m->skipped = sp_xcalloc(m->nskipped ? m->nskipped : 1, sizeof *m->skipped);
  for (size_t i = 0; i < m->nskipped; i++) {
    snprintf(c->where, sizeof c->where, "skipped_disks[%zu]", i);
    json_object *j = json_object_array_get_idx(a, i);
    if (!json_object_is_type(j, json_type_object))
      return bad(c, "", "not an object");
    if (get_str(c, j, "target", true, &m->skipped[i].target) < 0 ||
        get_str(c, j, "reason", true, &m->skipped[i].reason) < 0)
      return -1;
  }
  c->where[0] = '\0';
  if (parse_state(c, o, "nvram", &m->nvram) < 0 || parse_state(c, o, "tpm", &m->tpm) < 0 ||
      parse_window(c, o, &m->window) < 0 || parse_timings(c, o, &m->timings) < 0)
    return -1;
  json_object *w = field(o, "warnings");
  if (w && json_object_is_type(w, json_type_array))
    for (size_t i = 0; i < json_object_array_length(w); i++) {
      json_object *s = json_object_array_get_idx(w, i);
      if (json_object_is_type(s, json_type_string))
        sp_manifest_warn(m, json_object_get_string(s));
    }
  return 0;
}

int sp_manifest_parse(const char *text, size_t len, struct sp_manifest *m, struct sp_err *e)
{
  memset(m, 0, sizeof *m);
  struct ctx c = { .e = e };
  if (len > (64u << 20))
    return sp_err_set(e, SP_EXIT_FAILED, "manifest.json: larger than 64 MiB");
  if (memchr(text, '\0', len))
    return sp_err_set(e, SP_EXIT_FAILED, "manifest.json: binary data (NUL byte)");
  json_tokener *tok = json_tokener_new_ex(64);
  if (!tok)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "manifest");
  _cleanup_json_ json_object *o = json_tokener_parse_ex(tok, text, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t used = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (!o || jerr != json_tokener_success)
    return sp_err_set(e, SP_EXIT_FAILED, "manifest.json: not valid JSON (%s)",
                      json_tokener_error_desc(jerr));
  for (size_t i = used; i < len; i++)
    if (!isspace((unsigned char)text[i]))
      return sp_err_set(e, SP_EXIT_FAILED, "manifest.json: data after the JSON document");
  if (parse_root(&c, o, m) < 0) {
    sp_manifest_free(m);
    return -1;
  }
  return 0;
}

int sp_manifest_load_at(int point_fd, const char *point_dir, struct sp_manifest *m,
                        struct sp_err *e)
{
  memset(m, 0, sizeof *m);
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (sp_read_file_at(point_fd, "manifest.json", 64u << 20, &buf, &len, e) < 0)
    return sp_err_prefix(e, "%s", point_dir);
  if (sp_manifest_parse(buf, len, m, e) < 0)
    return sp_err_prefix(e, "%s", point_dir);
  if (m->format != SP_MANIFEST_FORMAT) {
    sp_manifest_free(m);
    return sp_err_set(e, SP_EXIT_FAILED, "%s: manifest.json has format %d (a point kept in "
                      "Ceph), not a directory point's", point_dir, SP_MANIFEST_FORMAT_RBD);
  }
  return 0;
}

int sp_manifest_load(const char *point_dir, struct sp_manifest *m, struct sp_err *e)
{
  memset(m, 0, sizeof *m);
  _cleanup_close_ int fd = open(point_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", point_dir);
  return sp_manifest_load_at(fd, point_dir, m, e);
}

static void state_free(struct sp_manifest_state *s)
{
  for (size_t i = 0; i < s->nfiles; i++)
    free(s->files[i].name);
  free(s->files);
  free(s->host_path);
  free(s->path);
  free(s->type);
  free(s->format);
  free(s->template_path);
  free(s->version);
  free(s->owner);
  free(s->group);
  free(s->secret_uuid);
}

void sp_manifest_free(struct sp_manifest *m)
{
  for (size_t i = 0; i < m->ndisks; i++) {
    struct sp_manifest_disk *d = &m->disks[i];
    free(d->target);
    free(d->source);
    free(d->format);
    free(d->file);
    free(d->parent_file);
    free(d->copier);
    free(d->image_format);
    free(d->rbd_image);
    free(d->rbd_snapshot);
  }
  free(m->disks);
  for (size_t i = 0; i < m->nskipped; i++) {
    free(m->skipped[i].target);
    free(m->skipped[i].reason);
  }
  free(m->skipped);
  state_free(&m->nvram);
  state_free(&m->tpm);
  free(m->window.freeze_at);
  free(m->window.paused_at);
  free(m->window.resumed_at);
  free(m->window.thawed_at);
  sp_strv_free(&m->warnings);
  free(m->tool);
  free(m->host);
  free(m->domain);
  free(m->uuid);
  free(m->id);
  free(m->parent);
  free(m->full);
  free(m->checkpoint);
  free(m->parent_checkpoint);
  free(m->created);
  memset(m, 0, sizeof *m);
}

const struct sp_manifest_disk *sp_manifest_disk(const struct sp_manifest *m, const char *target)
{
  for (size_t i = 0; i < m->ndisks; i++)
    if (strcmp(m->disks[i].target, target) == 0)
      return &m->disks[i];
  return NULL;
}

void sp_manifest_warn(struct sp_manifest *m, const char *text)
{
  sp_strv_push(&m->warnings, text);
}
