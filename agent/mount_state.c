#include "mount_state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsutil.h"
#include "sha256.h"
#include "xalloc.h"

enum { MAX_ITEMS = 256 };

int mount_run_dir(const char *dir, char run[PATH_MAX], struct sp_err *e)
{
  char hex[SP_SHA256_HEX_LEN + 1];
  if (sp_sha256_hex(dir, strlen(dir), hex) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "SHA-256 of %s failed", dir);
  snprintf(run, PATH_MAX, "%s/%.16s", SP_MOUNT_RUN_ROOT, hex);
  return 0;
}

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *proc_json(const struct proc_ref *p)
{
  if (!p->pid)
    return NULL;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "pid", json_object_new_int64(p->pid));
  json_object_object_add(o, "start", json_object_new_uint64(p->start));
  return o;
}

int mount_state_to_json(const struct mount_state *s, char **out, struct sp_err *e)
{
  json_object *o = json_object_new_object();
  json_object_object_add(o, "format", json_object_new_int(SP_MOUNT_STATE_FORMAT));
  json_object_object_add(o, "dir", jstr(s->dir));
  json_object_object_add(o, "point", jstr(s->point));
  json_object_object_add(o, "disk", jstr(s->disk));
  json_object_object_add(o, "qemu_nbd", proc_json(&s->qemu_nbd));
  json_object_object_add(o, "nbdfuse", proc_json(&s->nbdfuse));
  json_object *loops = json_object_new_array();
  for (size_t i = 0; i < s->nloops; i++) {
    json_object *l = json_object_new_object();
    json_object_object_add(l, "dev", jstr(s->loops[i].dev));
    json_object_object_add(l, "offset", json_object_new_uint64(s->loops[i].offset));
    json_object_object_add(l, "size", json_object_new_uint64(s->loops[i].size));
    json_object_array_add(loops, l);
  }
  json_object_object_add(o, "loops", loops);
  json_object *mounts = json_object_new_array();
  for (size_t i = 0; i < s->nmounts; i++) {
    const struct mount_entry *m = &s->mounts[i];
    json_object *j = json_object_new_object();
    json_object_object_add(j, "source", jstr(m->source));
    json_object_object_add(j, "target", jstr(m->target));
    json_object_object_add(j, "type", jstr(m->type));
    json_object_object_add(j, "partition", json_object_new_int(m->partition));
    json_object_object_add(j, "created", json_object_new_boolean(m->created));
    json_object_object_add(j, "no_replay", json_object_new_boolean(m->no_replay));
    json_object_array_add(mounts, j);
  }
  json_object_object_add(o, "mounts", mounts);
  const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
  *out = text ? sp_xstrdup(text) : NULL;
  json_object_put(o);
  if (!*out) /* json-c's own allocation failed */
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "mount state");
  return 0;
}

/* ---- parsing ------------------------------------------------------------ */

static bool abs_path_ok(const char *p)
{
  return p && p[0] == '/' && (p[1] == '\0' || sp_relpath_ok(p + 1)) && strlen(p) < PATH_MAX;
}

/* The point: a directory, or a Ceph point's name (rbd:POOL[/NS]/UUID@ID,
 * of the characters Ceph names take here).  It is only ever printed. */
static bool point_ok(const char *p)
{
  if (abs_path_ok(p))
    return true;
  if (!p || strncmp(p, "rbd:", 4) != 0 || !p[4] || strlen(p) >= PATH_MAX)
    return false;
  for (const char *c = p + 4; *c; c++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/@", *c))
      return false;
  return true;
}

static bool loop_dev_ok(const char *p)
{
  if (!p || strncmp(p, "/dev/loop", 9) != 0 || !p[9] || strlen(p) > 16)
    return false;
  for (const char *c = p + 9; *c; c++)
    if (*c < '0' || *c > '9')
      return false;
  return true;
}

/* The directory itself, or dir/<digits>. */
static bool target_ok(const char *dir, const char *t)
{
  size_t n = strlen(dir);
  if (!t || strncmp(t, dir, n) != 0)
    return false;
  if (!t[n])
    return true;
  const char *rest = t + n + (strcmp(dir, "/") != 0);
  if ((strcmp(dir, "/") != 0 && t[n] != '/') || !*rest || strlen(rest) > 3)
    return false;
  for (const char *c = rest; *c; c++)
    if (*c < '0' || *c > '9')
      return false;
  return true;
}

static int get_str(json_object *o, const char *key, bool required, char **out,
                   struct sp_err *e)
{
  json_object *v;
  *out = NULL;
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
    if (required)
      return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" missing", key);
    return 0;
  }
  if (!json_object_is_type(v, json_type_string))
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" is not a string", key);
  *out = sp_xstrdup(json_object_get_string(v));
  return 0;
}

static int get_u64(json_object *o, const char *key, unsigned long long max,
                   unsigned long long *out, struct sp_err *e)
{
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" missing or not a number", key);
  errno = 0;
  int64_t i = json_object_get_int64(v);
  uint64_t u = json_object_get_uint64(v);
  if (i < 0 || u > max)
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" out of range", key);
  *out = u;
  return 0;
}

static int get_bool(json_object *o, const char *key, bool *out, struct sp_err *e)
{
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" missing or not a boolean", key);
  *out = json_object_get_boolean(v);
  return 0;
}

static int get_proc(json_object *o, const char *key, struct proc_ref *p, struct sp_err *e)
{
  json_object *v;
  memset(p, 0, sizeof *p);
  if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
    return 0;
  if (!json_object_is_type(v, json_type_object))
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" is not an object", key);
  unsigned long long pid;
  if (get_u64(v, "pid", 4194304, &pid, e) < 0 || get_u64(v, "start", ULLONG_MAX, &p->start, e) < 0)
    return -1;
  if (pid < 2)
    return sp_err_set(e, SP_EXIT_FAILED, "mount state: %s pid %llu", key, pid);
  p->pid = (pid_t)pid;
  return 0;
}

static json_object *get_array(json_object *o, const char *key, struct sp_err *e)
{
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array)) {
    sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" missing or not a list", key);
    return NULL;
  }
  if (json_object_array_length(v) > MAX_ITEMS) {
    sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" too long", key);
    return NULL;
  }
  return v;
}

static int parse_items(json_object *root, struct mount_state *s, struct sp_err *e)
{
  json_object *loops = get_array(root, "loops", e), *mounts;
  if (!loops || !(mounts = get_array(root, "mounts", e)))
    return -1;
  for (size_t i = 0; i < json_object_array_length(loops); i++) {
    json_object *l = json_object_array_get_idx(loops, i);
    _cleanup_free_ char *dev = NULL;
    unsigned long long off, size;
    if (!json_object_is_type(l, json_type_object))
      return sp_err_set(e, SP_EXIT_FAILED, "mount state: loop %zu is not an object", i);
    if (get_str(l, "dev", true, &dev, e) < 0 || get_u64(l, "offset", ULLONG_MAX, &off, e) < 0 ||
        get_u64(l, "size", ULLONG_MAX, &size, e) < 0)
      return -1;
    if (!loop_dev_ok(dev))
      return sp_err_set(e, SP_EXIT_FAILED, "mount state: \"%s\" is not a loop device", dev);
    if (mount_state_add_loop(s, dev, off, size, e) < 0)
      return -1;
  }
  for (size_t i = 0; i < json_object_array_length(mounts); i++) {
    json_object *j = json_object_array_get_idx(mounts, i);
    struct mount_entry m = { 0 };
    unsigned long long part;
    if (!json_object_is_type(j, json_type_object))
      return sp_err_set(e, SP_EXIT_FAILED, "mount state: mount %zu is not an object", i);
    int rc = get_str(j, "source", true, &m.source, e);
    if (rc == 0)
      rc = get_str(j, "target", true, &m.target, e);
    if (rc == 0)
      rc = get_str(j, "type", true, &m.type, e);
    if (rc == 0)
      rc = get_u64(j, "partition", 4096, &part, e);
    if (rc == 0)
      rc = get_bool(j, "created", &m.created, e);
    if (rc == 0)
      rc = get_bool(j, "no_replay", &m.no_replay, e);
    if (rc == 0 && (!abs_path_ok(m.source) || !target_ok(s->dir, m.target)))
      rc = sp_err_set(e, SP_EXIT_FAILED, "mount state: mount %zu names %s on %s", i, m.source,
                      m.target);
    m.partition = (int)part;
    if (rc == 0)
      rc = mount_state_add_mount(s, &m, e);
    free(m.source);
    free(m.target);
    free(m.type);
    if (rc < 0)
      return -1;
  }
  return 0;
}

int mount_state_parse(const char *text, size_t len, struct mount_state *s, struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "mount state");
  json_object *root = len <= INT_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
  bool whole = root && json_tokener_get_error(tok) == json_tokener_success &&
               json_tokener_get_parse_end(tok) == len;
  json_tokener_free(tok);
  int rc = 0;
  unsigned long long format = 0;
  if (!whole || !json_object_is_type(root, json_type_object))
    rc = sp_err_set(e, SP_EXIT_FAILED, "mount state: not a JSON object");
  if (rc == 0)
    rc = get_u64(root, "format", 1000, &format, e);
  if (rc == 0 && format != SP_MOUNT_STATE_FORMAT)
    rc = sp_err_set(e, SP_EXIT_FAILED, "mount state: format %llu, this stillpoint knows %d",
                    format, SP_MOUNT_STATE_FORMAT);
  s->format = (int)format;
  if (rc == 0)
    rc = get_str(root, "dir", true, &s->dir, e);
  if (rc == 0)
    rc = get_str(root, "point", true, &s->point, e);
  if (rc == 0)
    rc = get_str(root, "disk", true, &s->disk, e);
  if (rc == 0 && (!abs_path_ok(s->dir) || !point_ok(s->point) || !sp_name_ok(s->disk)))
    rc = sp_err_set(e, SP_EXIT_FAILED, "mount state: bad dir, point or disk");
  if (rc == 0)
    rc = get_proc(root, "qemu_nbd", &s->qemu_nbd, e);
  if (rc == 0)
    rc = get_proc(root, "nbdfuse", &s->nbdfuse, e);
  if (rc == 0)
    rc = parse_items(root, s, e);
  json_object_put(root);
  if (rc < 0)
    mount_state_free(s);
  return rc;
}

void mount_state_free(struct mount_state *s)
{
  free(s->dir);
  free(s->point);
  free(s->disk);
  for (size_t i = 0; i < s->nloops; i++)
    free(s->loops[i].dev);
  free(s->loops);
  for (size_t i = 0; i < s->nmounts; i++) {
    free(s->mounts[i].source);
    free(s->mounts[i].target);
    free(s->mounts[i].type);
  }
  free(s->mounts);
  memset(s, 0, sizeof *s);
}

int mount_state_add_loop(struct mount_state *s, const char *dev, unsigned long long offset,
                         unsigned long long size, struct sp_err *e)
{
  s->loops = sp_xreallocarray(s->loops, s->nloops + 1, sizeof *s->loops);
  s->loops[s->nloops++] = (struct mount_loop){ .dev = sp_xstrdup(dev), .offset = offset,
                                               .size = size };
  return 0;
}

int mount_state_add_mount(struct mount_state *s, const struct mount_entry *m, struct sp_err *e)
{
  s->mounts = sp_xreallocarray(s->mounts, s->nmounts + 1, sizeof *s->mounts);
  struct mount_entry *c = &s->mounts[s->nmounts++];
  *c = *m;
  c->source = sp_xstrdup(m->source);
  c->target = sp_xstrdup(m->target);
  c->type = sp_xstrdup(m->type);
  return 0;
}

int mount_state_save(const struct mount_state *s, const char *run, struct sp_err *e)
{
  _cleanup_free_ char *text = NULL;
  if (mount_state_to_json(s, &text, e) < 0)
    return -1;
  _cleanup_close_ int fd = open(run, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", run);
  return sp_write_file_at(fd, "state.json", text, strlen(text), 0600, e);
}

int mount_state_load(const char *run, struct mount_state *s, struct sp_err *e)
{
  _cleanup_free_ char *path = sp_path_join(run, "state.json");
  _cleanup_free_ char *text = NULL;
  size_t len;
  memset(s, 0, sizeof *s);
  if (sp_read_file(path, 1 << 20, &text, &len, e) < 0)
    return -1;
  return mount_state_parse(text, len, s, e);
}
