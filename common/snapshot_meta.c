#include "snapshot_meta.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "cleanup.h"
#include "cleanup_json.h"
#include "fsutil.h"
#include "uuid.h"
#include "xalloc.h"


static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *jmode(mode_t m)
{
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", (unsigned)(m & 07777));
  return json_object_new_string(buf);
}

/* The fields a TPM file and the NVRAM share: size, hash, owner, mode. */
static void add_blob_fields(json_object *o, const struct sp_blob *b)
{
  json_object_object_add(o, "size", json_object_new_int64((int64_t)b->len));
  json_object_object_add(o, "sha256", json_object_new_string(b->sha256));
  json_object_object_add(o, "mode", jmode(b->mode));
  json_object_object_add(o, "uid", json_object_new_int64(b->uid));
  json_object_object_add(o, "gid", json_object_new_int64(b->gid));
}

static json_object *tpm_json(const struct sp_snapshot *s)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "version", jstr(s->tpm_version));
  json_object_object_add(o, "subdir", jstr(s->tpm_subdir));
  json_object_object_add(o, "state_dir", jstr(s->tpm_state_dir));
  json_object_object_add(o, "encryption_secret", jstr(s->tpm_secret_uuid));
  json_object_object_add(o, "digest", json_object_new_string(s->tpm.digest));
  json_object_object_add(o, "stat", jstr(s->tpm_stat));
  json_object *files = json_object_new_array();
  for (size_t i = 0; i < s->tpm.n; i++) {
    json_object *f = json_object_new_object();
    json_object_object_add(f, "name", jstr(s->tpm.files[i].name));
    add_blob_fields(f, &s->tpm.files[i]);
    json_object_array_add(files, f);
  }
  json_object_object_add(o, "files", files);
  return o;
}

static json_object *nvram_json(const struct sp_snapshot *s)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "path", jstr(s->nvram_path));
  json_object_object_add(o, "type", jstr(s->nvram_block ? "block" : "file"));
  json_object_object_add(o, "file", jstr(s->nvram.name));
  add_blob_fields(o, &s->nvram);
  json_object_object_add(o, "mtime_ns", json_object_new_int64(s->nvram_mtime_ns));
  json_object_object_add(o, "ctime_ns", json_object_new_int64(s->nvram_ctime_ns));
  return o;
}

char *sp_snap_meta_format(const struct sp_snapshot *s)
{
  _cleanup_json_ json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  json_object_object_add(o, "format", json_object_new_int(SP_SNAP_FORMAT));
  json_object_object_add(o, "id", jstr(s->id));
  json_object_object_add(o, "created", jstr(s->created));
  json_object_object_add(o, "domain", jstr(s->domain));
  json_object_object_add(o, "uuid", jstr(s->uuid));
  json_object_object_add(o, "event", jstr(s->event));
  json_object_object_add(o, "tool", jstr("stillpoint " STILLPOINT_VERSION));
  json_object_object_add(o, "tpm", s->has_tpm ? tpm_json(s) : NULL);
  json_object_object_add(o, "nvram", s->has_nvram ? nvram_json(s) : NULL);
  const char *text = json_object_to_json_string_ext(
    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
  return text ? strdup(text) : NULL;
}

/* --- parsing: every value is checked before it is used --------------- */

static const char *get_str(json_object *o, const char *key)
{
  json_object *v;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
           ? json_object_get_string(v)
           : NULL;
}

static int dup_str(json_object *o, const char *key, bool required, char **out,
                   struct sp_err *e)
{
  const char *v = get_str(o, key);
  if (!v)
    return required ? sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: '%s' missing", key) : 0;
  *out = sp_xstrdup(v);
  return 0;
}

static bool hex64(const char *s)
{
  if (!s || strlen(s) != SP_SHA256_HEX_LEN)
    return false;
  return strspn(s, "0123456789abcdef") == SP_SHA256_HEX_LEN;
}

static int parse_blob(json_object *o, const char *name_key, struct sp_blob *b,
                      struct sp_err *e)
{
  const char *name = get_str(o, name_key), *sha = get_str(o, "sha256"), *mode = get_str(o, "mode");
  json_object *size, *uid, *gid;
  if (!name || !sp_name_ok(name) || strpbrk(name, "\\\n"))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: bad or missing file name");
  if (!hex64(sha) || !mode || !json_object_object_get_ex(o, "size", &size) ||
      !json_object_object_get_ex(o, "uid", &uid) || !json_object_object_get_ex(o, "gid", &gid))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: %s: sha256, size, mode, uid or gid "
                      "missing", name);
  b->name = sp_xstrdup(name);
  memcpy(b->sha256, sha, sizeof b->sha256);
  b->len = (size_t)json_object_get_int64(size);
  b->mode = (mode_t)strtol(mode, NULL, 8) & 07777;
  b->uid = (uid_t)json_object_get_int64(uid);
  b->gid = (gid_t)json_object_get_int64(gid);
  return 0;
}

static int parse_tpm(json_object *o, struct sp_snapshot *s, struct sp_err *e)
{
  s->has_tpm = true;
  if (dup_str(o, "version", true, &s->tpm_version, e) < 0 ||
      dup_str(o, "subdir", true, &s->tpm_subdir, e) < 0 ||
      dup_str(o, "state_dir", false, &s->tpm_state_dir, e) < 0 ||
      dup_str(o, "encryption_secret", false, &s->tpm_secret_uuid, e) < 0 ||
      dup_str(o, "stat", false, &s->tpm_stat, e) < 0)
    return -1;
  if (strcmp(s->tpm_subdir, "tpm2") != 0 && strcmp(s->tpm_subdir, "tpm1.2") != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: TPM subdir '%s'", s->tpm_subdir);
  const char *digest = get_str(o, "digest");
  json_object *files;
  if (!hex64(digest) || !json_object_object_get_ex(o, "files", &files) ||
      !json_object_is_type(files, json_type_array))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: TPM digest or files missing");
  memcpy(s->tpm.digest, digest, sizeof s->tpm.digest);
  size_t n = json_object_array_length(files);
  s->tpm.files = sp_xcalloc(n ? n : 1, sizeof *s->tpm.files);
  for (size_t i = 0; i < n; i++, s->tpm.n++)
    if (parse_blob(json_object_array_get_idx(files, i), "name", &s->tpm.files[i], e) < 0)
      return -1;
  return 0;
}

static int parse_nvram(json_object *o, struct sp_snapshot *s, struct sp_err *e)
{
  s->has_nvram = true;
  const char *type = get_str(o, "type");
  s->nvram_block = type && strcmp(type, "block") == 0;
  json_object *t;
  if (json_object_object_get_ex(o, "mtime_ns", &t))
    s->nvram_mtime_ns = json_object_get_int64(t);
  if (json_object_object_get_ex(o, "ctime_ns", &t))
    s->nvram_ctime_ns = json_object_get_int64(t);
  if (dup_str(o, "path", true, &s->nvram_path, e) < 0)
    return -1;
  return parse_blob(o, "file", &s->nvram, e);
}

int sp_snap_meta_parse(const char *text, size_t len, struct sp_snapshot *s, struct sp_err *e)
{
  /* Exactly len bytes: text need not end in a NUL (json_tokener_parse
   * would read on until one). */
  if (len > (1u << 20) || memchr(text, '\0', len))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json is not a JSON object");
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "snapshot.json");
  _cleanup_json_ json_object *o = json_tokener_parse_ex(tok, text, (int)len);
  bool whole = json_tokener_get_error(tok) == json_tokener_success &&
               json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  json_object *fmt, *tpm = NULL, *nvram = NULL;
  if (!o || !whole || !json_object_is_type(o, json_type_object))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json is not a JSON object");
  if (!json_object_object_get_ex(o, "format", &fmt) || json_object_get_int(fmt) != SP_SNAP_FORMAT)
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: format is not %d", SP_SNAP_FORMAT);
  if (dup_str(o, "id", true, &s->id, e) < 0 || dup_str(o, "created", false, &s->created, e) < 0 ||
      dup_str(o, "domain", false, &s->domain, e) < 0 ||
      dup_str(o, "uuid", true, &s->uuid, e) < 0 || dup_str(o, "event", false, &s->event, e) < 0)
    return -1;
  if (!sp_uuid_ok(s->uuid))
    return sp_err_set(e, SP_EXIT_FAILED, "snapshot.json: '%s' is not a UUID", s->uuid);
  json_object_object_get_ex(o, "tpm", &tpm);
  json_object_object_get_ex(o, "nvram", &nvram);
  if (json_object_is_type(tpm, json_type_object) && parse_tpm(tpm, s, e) < 0)
    return -1;
  if (json_object_is_type(nvram, json_type_object) && parse_nvram(nvram, s, e) < 0)
    return -1;
  return 0;
}
