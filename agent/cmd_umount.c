/* stillpoint umount DIR: takes down everything stillpoint mount set up on
 * DIR - mounts, loop devices, nbdfuse, qemu-nbd, socket - from the state it
 * recorded (mount_state.h), also when parts of it are already gone. */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "disk_mount.h"
#include "mount_state.h"

static const char umount_usage[] =
  "usage: stillpoint umount DIR [--json]\n"
  "Unmounts what stillpoint mount put on DIR and ends everything it started.\n";

int cmd_umount(int argc, char **argv)
{
  struct cli c;
  struct sp_err e = { 0 };
  struct mount_state st = { 0 };
  bool loaded = false;
  char dir[PATH_MAX], run[PATH_MAX];
  int rc = SP_EXIT_OK;
  if (cli_parse(&c, argc, argv, NULL, NULL, NULL, umount_usage, &e) < 0 ||
      (c.nargs != 1 && sp_err_set(&e, SP_EXIT_USAGE, "umount needs DIR\n%s", umount_usage)) ||
      (geteuid() != 0 &&
       sp_err_set(&e, SP_EXIT_PREFLIGHT, "stillpoint umount needs root: it unmounts file "
                  "systems and detaches loop devices"))) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  /* A directory already gone is still named by its absolute path. */
  if (!realpath(c.args[0], dir)) {
    char cwd[PATH_MAX / 2];
    if (c.args[0][0] == '/' || !getcwd(cwd, sizeof cwd))
      snprintf(dir, sizeof dir, "%.*s", PATH_MAX - 1, c.args[0]);
    else
      snprintf(dir, sizeof dir, "%s/%.*s", cwd, PATH_MAX / 2 - 2, c.args[0]);
  }
  if (mount_run_dir(dir, run, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (mount_state_load(run, &st, &e) < 0) {
    if (errno == ENOENT)
      sp_err_set(&e, SP_EXIT_FAILED, "nothing of stillpoint mount is on %s", dir);
    rc = cli_fail(&c, &e);
    goto out;
  }
  loaded = true;
  if (disk_unmount(&st, run, &e) < 0) {
    rc = cli_fail(&c, &e);
    goto out;
  }
  if (c.json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "dir", json_object_new_string(st.dir));
    json_object_object_add(o, "point", json_object_new_string(st.point));
    json_object_object_add(o, "disk", json_object_new_string(st.disk));
    json_object_object_add(o, "unmounted", json_object_new_boolean(true));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else
    printf("unmounted %s (disk %s of %s)\n", st.dir, st.disk, st.point);
out:
  if (loaded)
    mount_state_free(&st);
  cli_free(&c);
  return rc;
}
