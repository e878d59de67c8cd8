/* stillpoint mount POINT [--disk TARGET] DIR: one disk of a point,
 * read-only, its file systems under DIR (disk_mount.h), for getting files
 * back without restoring anything; stillpoint umount (cmd_umount.c) takes
 * it down.  The point is input like any other: a directory point's chain
 * is validated (point_chain.h) before QEMU opens a byte of it; a Ceph
 * point is opened as verify and restore open it (rbd_point.h) and its
 * disk's RBD snapshot, checked to exist with the manifest's size, is
 * served through QEMU's rbd driver - a snapshot is read-only in itself. */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "disk_mount.h"
#include "fsutil.h"
#include "manifest.h"
#include "mount_state.h"
#include "point_chain.h"
#include "rbd_point.h"
#include "xalloc.h"

static const char mount_usage[] =
  "usage: stillpoint mount POINT [--disk TARGET] DIR [--json]\n"
  "POINT is a point directory or a Ceph point, rbd:POOL[/NAMESPACE]/UUID@ID.\n"
  "Mounts the file systems of one disk of a point read-only under DIR: DIR/<n> for\n"
  "partition n, DIR itself for a disk without partitions. Needs root.\n"
  "stillpoint umount DIR takes it all down again.\n";

enum { OPT_DISK = 0x2500 };

static int mount_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  if (opt != OPT_DISK)
    return sp_err_set(e, SP_EXIT_USAGE, "unexpected option");
  *(const char **)user = arg;
  return 0;
}

static int need_root(struct sp_err *e)
{
  if (geteuid() != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "stillpoint mount needs root: it attaches loop "
                      "devices and mounts file systems");
  return 0;
}

/* The disk to mount: --disk, or the point's only one. */
static int pick_disk(const struct sp_manifest *m, const char *want, const char **target,
                     struct sp_err *e)
{
  if (want) {
    if (!sp_manifest_disk(m, want))
      return sp_err_set(e, SP_EXIT_USAGE, "point %s has no disk %s", m->id, want);
    *target = want;
    return 0;
  }
  if (m->ndisks == 1) {
    *target = m->disks[0].target;
    return 0;
  }
  char list[512] = "";
  for (size_t i = 0; i < m->ndisks; i++) {
    size_t n = strlen(list);
    snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", m->disks[i].target);
  }
  return sp_err_set(e, SP_EXIT_USAGE, "point %s has %zu disks (%s): name one with --disk",
                    m->id, m->ndisks, m->ndisks ? list : "none");
}

static int dir_empty(const char *dir, struct sp_err *e)
{
  _cleanup_closedir_ DIR *d = opendir(dir);
  if (!d)
    return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "%s", dir);
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not empty: mount into an empty "
                        "directory", dir);
  return 0;
}

/* A state left by an earlier mount of dir: refused while it is in place,
 * taken down when any part of it is gone (a stale mount). */
static int clear_stale(const char *dir, const char *run, const struct sp_log *log,
                       struct sp_err *e)
{
  struct mount_state old;
  if (mount_state_load(run, &old, e) < 0) {
    if (errno == ENOENT) {
      sp_err_clear(e);
      /* A run directory without a state: a mount stopped before it
       * started anything. */
      return sp_is_dir(run) ? sp_rm_rf(run, e) : 0;
    }
    return sp_err_prefix(e, "%s holds an earlier mount's state that cannot be read; check "
                         "nothing of it is mounted, then remove %s", dir, run);
  }
  int rc = 0;
  if (disk_mount_alive(&old, run))
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "%s already holds disk %s of %s: stillpoint umount "
                    "%s first", dir, old.disk, old.point, dir);
  else {
    sp_info(log, "taking down a stale mount of %s (disk %s of %s)", dir, old.disk, old.point);
    rc = disk_unmount(&old, run, e);
  }
  mount_state_free(&old);
  return rc;
}

static void print_mounted(const struct cli *c, const struct mount_state *st)
{
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "dir", json_object_new_string(st->dir));
    json_object_object_add(o, "point", json_object_new_string(st->point));
    json_object_object_add(o, "disk", json_object_new_string(st->disk));
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < st->nmounts; i++) {
      const struct mount_entry *m = &st->mounts[i];
      json_object *j = json_object_new_object();
      json_object_object_add(j, "target", json_object_new_string(m->target));
      json_object_object_add(j, "type", json_object_new_string(m->type));
      json_object_object_add(j, "partition", json_object_new_int(m->partition));
      json_object_object_add(j, "device", json_object_new_string(m->source));
      json_object_object_add(j, "journal_replayed", json_object_new_boolean(!m->no_replay));
      json_object_array_add(a, j);
    }
    json_object_object_add(o, "mounts", a);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return;
  }
  for (size_t i = 0; i < st->nmounts; i++) {
    const struct mount_entry *m = &st->mounts[i];
    char what[32];
    if (m->partition)
      snprintf(what, sizeof what, "partition %d", m->partition);
    else
      snprintf(what, sizeof what, "whole disk");
    printf("%s  %s, %s, read-only%s\n", m->target, m->type, what,
           m->no_replay ? ", journal not replayed" : "");
  }
  printf("disk %s of %s; stillpoint umount %s takes it down\n", st->disk, st->point, st->dir);
}

/* What to serve, and the point's name for the mount state. */
struct mount_src {
  struct sp_point pt;
  struct sp_manifest m;
  bool have_m;
  struct sp_sums sums;
  struct sp_disk_chain chain;
  struct rbd_point rbd;
  bool have_rbd;
  struct sp_config cfg;
  char *spec;
  int *fds;
  struct disk_source src;
  const char *point;
};

static void mount_src_free(struct mount_src *s)
{
  free(s->spec);
  free(s->fds);
  sp_disk_chain_free(&s->chain);
  sp_sums_free(&s->sums);
  sp_point_close(&s->pt);
  if (s->have_m)
    sp_manifest_free(&s->m);
  if (s->have_rbd)
    rbd_point_close(&s->rbd);
  sp_config_free(&s->cfg);
}

/* A point is untrusted input (docs/design.md, "Threat model"): its chain
 * is opened below a trusted directory, every header checked, and qemu-nbd
 * gets only those descriptors. */
static int open_dir_point(struct mount_src *s, const char *arg, const char *want,
                          const char **target, struct sp_err *e)
{
  size_t nfds = 0;
  if (sp_point_open(arg, &s->pt, e) < 0 || sp_point_scan(s->pt.fd, s->pt.path, e) < 0 ||
      sp_manifest_load_at(s->pt.fd, s->pt.path, &s->m, e) < 0 || !(s->have_m = true) ||
      sp_sums_load_at(s->pt.fd, &s->sums, e) < 0 || pick_disk(&s->m, want, target, e) < 0 ||
      sp_disk_chain_resolve(s->pt.domain_fd, s->pt.fd, &s->m, &s->sums, *target, &s->chain,
                            e) < 0) {
    if (e->code == SP_EXIT_FAILED && !s->chain.n && s->have_m)
      e->code = SP_EXIT_PREFLIGHT;
    return -1;
  }
  s->spec = sp_chain_json(&s->chain, 0, 3, &s->fds, &nfds);
  if (!s->spec)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: its chain has no image format qemu-nbd can "
                      "be given", s->chain.target);
  s->src = (struct disk_source){ .spec = s->spec, .fds = s->fds, .nfds = nfds };
  s->point = s->pt.path;
  return 0;
}

/* A Ceph point: committed, its manifest the committed one (rbd_point.h);
 * the disk's snapshot there with the manifest's size.  The snapshot holds
 * raw guest bytes: qemu-nbd is told so rather than left to probe them. */
static int open_rbd_point(struct mount_src *s, const struct cli *c, const char *arg,
                          const char *want, const char **target, struct sp_err *e)
{
  if (cli_load_config(c, NULL, &s->cfg, e) < 0)
    return -1;
  s->have_rbd = true;
  if (rbd_point_open(&s->rbd, &s->cfg, arg, &c->log, e) < 0 ||
      pick_disk(&s->rbd.m, want, target, e) < 0)
    return -1;
  const struct sp_manifest_disk *d = sp_manifest_disk(&s->rbd.m, *target);
  if (rbd_point_snap_check(&s->rbd, d, e) < 0 ||
      !(s->spec = rbd_point_qemu_source(&s->rbd, d, e)))
    return -1;
  s->src = (struct disk_source){ .spec = s->spec, .format = "raw" };
  s->point = s->rbd.name;
  return 0;
}

int cmd_mount(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  const char *want = NULL;
  struct mount_src src = { .pt = SP_POINT_INIT };
  struct mount_state st = { .format = SP_MOUNT_STATE_FORMAT };
  char dir[PATH_MAX], run[PATH_MAX];
  const char *target = NULL;
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, (const struct option[]){
                  { "disk", required_argument, NULL, OPT_DISK }, { 0 } },
                mount_opt, &want, mount_usage, &e) < 0 ||
      (c.nargs != 2 &&
       sp_err_set(&e, SP_EXIT_USAGE, "mount needs POINT and DIR\n%s", mount_usage)) ||
      need_root(&e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (!realpath(c.args[1], dir) || !sp_is_dir(dir)) {
    sp_err_sys(&e, SP_EXIT_PREFLIGHT, errno ? errno : ENOTDIR, "%s", c.args[1]);
    rc = cli_fail(&c, &e);
    goto out;
  }
  if ((rbd_point_is(c.args[0]) ? open_rbd_point(&src, &c, c.args[0], want, &target, &e)
                               : open_dir_point(&src, c.args[0], want, &target, &e)) < 0 ||
      mount_run_dir(dir, run, &e) < 0 || clear_stale(dir, run, &c.log, &e) < 0 ||
      dir_empty(dir, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  st.dir = sp_xstrdup(dir);
  st.point = sp_xstrdup(src.point);
  st.disk = sp_xstrdup(target);
  if (disk_mount(&st, run, &src.src, &c.log, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  print_mounted(&c, &st);
out:
  mount_state_free(&st);
  mount_src_free(&src);
  cli_free(&c);
  return rc;
}
