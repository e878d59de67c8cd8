/* stillpoint hook install|uninstall|status: the link libvirt runs,
 * /etc/libvirt/hooks/qemu.d/stillpoint -> stillpoint-hook(8).  A symlink
 * there is ours; any other file of that name is someone else's and is
 * only replaced or removed with --force. */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "cleanup.h"
#include "cli.h"
#include "commands.h"
#include "fsutil.h"

#define HOOK_DIR "/etc/libvirt/hooks/qemu.d"
#define HOOK_NAME "stillpoint"

static const char usage[] =
  "usage: stillpoint hook install [--hook-binary PATH] [--force]\n"
  "       stillpoint hook uninstall [--force]\n"
  "       stillpoint hook status [--json]\n"
  "install links " HOOK_DIR "/" HOOK_NAME " to stillpoint-hook\n"
  "(default " STILLPOINT_HOOK_BINARY "); libvirtd then runs it at every VM start\n"
  "and stop. A new hook file is seen after libvirtd restarts or reloads.\n"
  "status exits 0 when the hook is installed and executable, 1 when not.\n"
  "--force replaces or removes a file of that name that is not our link.\n"
  "STILLPOINT_HOOK_DIR relocates " HOOK_DIR " (tests). See stillpoint-hook(8).\n";

enum { OPT_BINARY = 0x2200, OPT_FORCE };

struct hook_opts {
  const char *binary;
  bool force;
};

static int extra_opt(void *user, int opt, const char *arg, struct sp_err *e)
{
  struct hook_opts *o = user;
  if (opt == OPT_BINARY)
    o->binary = arg;
  else if (opt == OPT_FORCE)
    o->force = true;
  else
    return sp_err_set(e, SP_EXIT_USAGE, "unexpected option\n%s", usage);
  return 0;
}

static const char *hook_dir(void)
{
  const char *d = getenv("STILLPOINT_HOOK_DIR");
  return d && *d ? d : HOOK_DIR;
}

/* What is at the hook's path now. */
struct link_state {
  char path[PATH_MAX];
  bool exists, is_link, target_ok;
  char target[PATH_MAX];
};

static void link_state(struct link_state *ls)
{
  memset(ls, 0, sizeof *ls);
  snprintf(ls->path, sizeof ls->path, "%s/%s", hook_dir(), HOOK_NAME);
  struct stat st;
  ls->exists = lstat(ls->path, &st) == 0;
  ls->is_link = ls->exists && S_ISLNK(st.st_mode);
  if (ls->is_link) {
    ssize_t n = readlink(ls->path, ls->target, sizeof ls->target - 1);
    ls->target[n > 0 ? n : 0] = '\0';
  }
  /* What libvirt checks (virFileIsExecutable): a regular file, executable. */
  ls->target_ok = ls->exists && stat(ls->path, &st) == 0 && S_ISREG(st.st_mode) &&
                  access(ls->path, X_OK) == 0;
}

static int install(const struct hook_opts *o, struct sp_err *e)
{
  const char *bin = o->binary ? o->binary : STILLPOINT_HOOK_BINARY;
  struct stat st;
  if (bin[0] != '/')
    return sp_err_set(e, SP_EXIT_USAGE, "--hook-binary %s: give an absolute path", bin);
  if (stat(bin, &st) < 0 || !S_ISREG(st.st_mode) || access(bin, X_OK) < 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not an executable file: install "
                      "stillpoint-hook there, or name it with --hook-binary PATH", bin);
  struct link_state ls;
  link_state(&ls);
  if (ls.exists && !ls.is_link && !o->force)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists and is not stillpoint's link: not "
                      "replacing it (--force does)", ls.path);
  if (ls.is_link && strcmp(ls.target, bin) == 0) {
    printf("already installed: %s -> %s\n", ls.path, bin);
    return 0;
  }
  /* The hooks directory of the libvirt package is 0755 root. */
  if (sp_mkdir_p(hook_dir(), 0755, e) < 0)
    return -1;
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/.%s.new-%ld", hook_dir(), HOOK_NAME, (long)getpid());
  unlink(tmp);
  if (symlink(bin, tmp) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", tmp);
  /* rename: libvirt never sees a half-made hook, and an old one is replaced at once. */
  if (rename(tmp, ls.path) < 0) {
    int err = errno;
    unlink(tmp);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot install %s", ls.path);
  }
  printf("installed %s -> %s\n"
         "libvirtd finds a new hook file when it starts or reloads: restart or reload it "
         "before the hook takes effect (systemctl reload libvirtd, or virtqemud with the "
         "modular daemons; without systemd: kill -HUP $(pidof libvirtd)).\n",
         ls.path, bin);
  return 0;
}

static int uninstall(const struct hook_opts *o, struct sp_err *e)
{
  struct link_state ls;
  link_state(&ls);
  if (!ls.exists) {
    printf("not installed: %s does not exist\n", ls.path);
    return 0;
  }
  if (!ls.is_link && !o->force)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not stillpoint's link: not removing it "
                      "(--force does)", ls.path);
  if (unlink(ls.path) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove %s", ls.path);
  printf("removed %s; libvirtd lists the hook directory at every call, so it is no longer "
         "run\n", ls.path);
  return 0;
}

static int status(const struct cli *c, struct sp_err *e)
{
  struct sp_config cfg = { 0 };
  if (cli_load_config(c, NULL, &cfg, e) < 0)
    return -1;
  struct link_state ls;
  link_state(&ls);
  static const enum sp_key keys[] = { SP_KEY_SNAPSHOT_ON_STOP, SP_KEY_KEEP_SNAPSHOTS,
                                      SP_KEY_RECOVER_TPM, SP_KEY_BLOCK_START_ON_TPM_LOSS,
                                      SP_KEY_STATE_DIR, SP_KEY_BACKUP_ON_STOP };
  const char *what = !ls.exists ? "not installed"
                     : !ls.target_ok ? "installed but not executable: libvirt skips it"
                                     : "installed";
  if (c->json) {
    json_object *o = json_object_new_object(), *pol = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(ls.path));
    json_object_object_add(o, "installed", json_object_new_boolean(ls.exists));
    json_object_object_add(o, "executable", json_object_new_boolean(ls.target_ok));
    json_object_object_add(o, "target", ls.is_link ? json_object_new_string(ls.target) : NULL);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      json_object_object_add(pol, sp_config_key_def(keys[i])->name,
                             json_object_new_string(sp_config_str(&cfg, keys[i])));
    json_object_object_add(o, "policy", pol);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    printf("hook     %s: %s%s%s\n", ls.path, what, ls.is_link ? " -> " : "",
           ls.is_link ? ls.target : "");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      printf("%-24s %s\n", sp_config_key_def(keys[i])->name, sp_config_str(&cfg, keys[i]));
  }
  sp_config_free(&cfg);
  return ls.target_ok ? 0 : 1;
}

int cmd_hook(int argc, char **argv)
{
  static const struct option opts[] = { { "hook-binary", required_argument, NULL, OPT_BINARY },
                                        { "force", no_argument, NULL, OPT_FORCE },
                                        { 0 } };
  struct cli c;
  struct sp_err e = { 0 };
  struct hook_opts o = { 0 };
  int rc = -1;
  if (cli_parse(&c, argc, argv, opts, extra_opt, &o, usage, &e) == 0) {
    const char *verb = c.nargs == 1 ? c.args[0] : "";
    rc = strcmp(verb, "install") == 0     ? install(&o, &e)
         : strcmp(verb, "uninstall") == 0 ? uninstall(&o, &e)
         : strcmp(verb, "status") == 0    ? status(&c, &e)
                                          : sp_err_set(&e, SP_EXIT_USAGE, "hook needs one of "
                                                       "install, uninstall, status\n%s", usage);
  }
  int code = rc < 0 ? cli_fail(&c, &e) : rc;
  cli_free(&c);
  return code;
}
