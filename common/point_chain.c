#include "point_chain.h"

#include <errno.h>
#include <dirent.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"

enum { MAX_DEPTH = 1000 };

static bool is_dir_nolink(const char *p)
{
  struct stat st;
  return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file_nolink(const char *p)
{
  struct stat st;
  return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int sp_image_header(const char *image, char **format, char **backing, struct sp_err *e)
{
  *format = *backing = NULL;
  char *argv[] = { "qemu-img", "info", "--output=json", "-U", (char *)image, NULL };
  struct sp_run_result r;
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_OUT | SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int rc = 0;
  json_object *o = r.status == 0 ? json_tokener_parse(r.out) : NULL, *v;
  if (!o) {
    rc = sp_err_set(e, SP_EXIT_FAILED, "%s: qemu-img cannot read it: %s", image,
                    r.err ? r.err : "");
  } else {
    if (json_object_object_get_ex(o, "format", &v))
      *format = strdup(json_object_get_string(v));
    if (json_object_object_get_ex(o, "backing-filename", &v))
      *backing = strdup(json_object_get_string(v));
    if (!*format)
      rc = sp_err_set(e, SP_EXIT_FAILED, "%s: qemu-img gives no format", image);
    json_object_put(o);
  }
  sp_run_result_free(&r);
  return rc;
}

static int add_link(struct sp_disk_chain *c, const char *id, const char *pdir,
                    const char *image, const char *level, struct sp_err *e)
{
  struct sp_chain_link *nl = realloc(c->links, (c->n + 1) * sizeof *nl);
  if (!nl)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "chain");
  c->links = nl;
  struct sp_chain_link *l = &nl[c->n];
  memset(l, 0, sizeof *l);
  c->n++;
  if (!(l->id = strdup(id)) || !(l->point_dir = strdup(pdir)) || !(l->image = strdup(image)) ||
      !(l->level = strdup(level)))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "chain");
  return 0;
}

/* One step: checks the image of disk d in point pdir, appends it. */
static int check_link(struct sp_disk_chain *c, const char *pdir, const struct sp_manifest *m,
                      const struct sp_manifest_disk *d, struct sp_err *e)
{
  _cleanup_free_ char *disks = sp_path_join(pdir, "disks");
  _cleanup_free_ char *image = sp_path_join(pdir, d->file);
  if (!disks || !image)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "chain");
  if (!is_dir_nolink(disks) || !is_file_nolink(image))
    return sp_err_set(e, SP_EXIT_FAILED, "%s: missing (or not a regular file inside its point)",
                      image);
  if (add_link(c, m->id, pdir, image, d->level, e) < 0)
    return -1;
  _cleanup_free_ char *backing = NULL;
  struct sp_chain_link *l = &c->links[c->n - 1];
  if (sp_image_header(image, &l->format, &backing, e) < 0)
    return -1;
  if (strcmp(l->format, "qcow2") != 0 && strcmp(l->format, "raw") != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: format %s, expected qcow2", image, l->format);
  if (!d->parent_file) {
    if (backing)
      return sp_err_set(e, SP_EXIT_FAILED, "%s: a full image, yet its header names a backing "
                        "file (%s): refusing it", image, backing);
    return 0;
  }
  if (strcmp(l->format, "qcow2") != 0 || !backing || strcmp(backing, d->parent_file) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: its backing file is %s, but the manifest says %s: "
                      "refusing it", image, backing ? backing : "(none)", d->parent_file);
  return 0;
}

int sp_disk_chain_resolve(const char *point_dir, const struct sp_manifest *m,
                          const char *target, struct sp_disk_chain *c, struct sp_err *e)
{
  memset(c, 0, sizeof *c);
  char real[PATH_MAX];
  if (!realpath(point_dir, real))
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", point_dir);
  char dcopy[PATH_MAX];
  snprintf(dcopy, sizeof dcopy, "%s", real);
  const char *domain_dir = dirname(dcopy);
  if (!(c->target = strdup(target)))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "chain");

  struct sp_manifest cur = { 0 };
  const struct sp_manifest *mp = m;
  _cleanup_free_ char *pdir = strdup(real);
  int rc = 0;
  for (int depth = 0; rc == 0; depth++) {
    const struct sp_manifest_disk *d = sp_manifest_disk(mp, target);
    if (depth >= MAX_DEPTH) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "disk %s: chain longer than %d points", target,
                      MAX_DEPTH);
      break;
    }
    if (!d) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "point %s has no disk %s", mp->id, target);
      break;
    }
    if (strcmp(mp->uuid, m->uuid) != 0) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "point %s belongs to another domain (%s)", mp->id,
                      mp->uuid);
      break;
    }
    if ((rc = check_link(c, pdir, mp, d, e)) < 0 || !d->parent_file)
      break;
    /* "../../<id>/disks/<file>" (checked by the manifest parser) */
    const char *id = d->parent_file + 6;
    size_t idlen = strcspn(id, "/");
    _cleanup_free_ char *parent_id = strndup(id, idlen);
    _cleanup_free_ char *next = NULL;
    if (!parent_id || asprintf(&next, "%s/%s", domain_dir, parent_id) < 0) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "chain");
      break;
    }
    if (!is_dir_nolink(next)) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "disk %s: parent point %s of %s is missing (%s)",
                      target, parent_id, mp->id, next);
      break;
    }
    struct sp_manifest pm;
    if ((rc = sp_manifest_load(next, &pm, e)) < 0)
      break;
    sp_manifest_free(&cur);
    cur = pm;
    mp = &cur;
    free(pdir);
    pdir = steal_pointer(&next);
  }
  sp_manifest_free(&cur);
  return rc;
}

void sp_disk_chain_free(struct sp_disk_chain *c)
{
  for (size_t i = 0; i < c->n; i++) {
    free(c->links[i].id);
    free(c->links[i].point_dir);
    free(c->links[i].image);
    free(c->links[i].format);
    free(c->links[i].level);
  }
  free(c->links);
  free(c->target);
  memset(c, 0, sizeof *c);
}

/* Depth-first walk with lstat: names the first entry that is neither a
 * regular file nor a directory. */
static int scan_dir(const char *dir, int depth, struct sp_err *e)
{
  if (depth > 8)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: nested too deep for a point", dir);
  _cleanup_closedir_ DIR *d = opendir(dir);
  if (!d)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", dir);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    _cleanup_free_ char *p = sp_path_join(dir, de->d_name);
    struct stat st;
    if (!p)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "scan");
    if (lstat(p, &st) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", p);
    if (S_ISDIR(st.st_mode)) {
      if (scan_dir(p, depth + 1, e) < 0)
        return -1;
    } else if (!S_ISREG(st.st_mode)) {
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is %s: refusing a point that could lead "
                        "outside itself", p, S_ISLNK(st.st_mode) ? "a symlink" : "a special file");
    }
  }
  return 0;
}

int sp_point_scan(const char *point_dir, struct sp_err *e)
{
  if (!is_dir_nolink(point_dir))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not a point directory", point_dir);
  return scan_dir(point_dir, 0, e);
}
