#include "state_install.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"
#include "qemu_conf.h"
#include "xalloc.h"

const char *sp_tpm_state_file(const char *subdir)
{
  return subdir && strcmp(subdir, "tpm1.2") == 0 ? "tpm-00.permall" : "tpm2-00.permall";
}

enum sp_tpm_presence sp_tpm_presence(const char *state_dir, const char *subdir)
{
  _cleanup_closedir_ DIR *d = opendir(state_dir);
  if (!d)
    return SP_TPM_DIR_MISSING;
  const char *want = sp_tpm_state_file(subdir);
  bool visible = false, found = false;
  struct dirent *de;
  while ((de = readdir(d))) {
    visible |= de->d_name[0] != '.';
    found |= strcmp(de->d_name, want) == 0;
  }
  return found ? SP_TPM_PRESENT : visible ? SP_TPM_FILE_MISSING : SP_TPM_DIR_EMPTY;
}

const char *sp_tpm_presence_str(enum sp_tpm_presence p)
{
  switch (p) {
  case SP_TPM_PRESENT: return "present";
  case SP_TPM_DIR_MISSING: return "directory missing";
  case SP_TPM_DIR_EMPTY: return "directory empty";
  case SP_TPM_FILE_MISSING: return "state file missing";
  }
  return "?";
}

int sp_swtpm_ids(const char *qemu_conf, uid_t *uid, gid_t *gid, struct sp_err *e)
{
  _cleanup_(sp_qemu_conf_free) struct sp_qemu_conf qc = { 0 };
  if (sp_qemu_conf_read(qemu_conf, &qc, e) < 0)
    return -1;
  /* Names or "+N", resolved as for every other owner (host.c). */
  struct sp_host local;
  sp_host_local(&local);
  if (local.ops->ids(&local, qc.swtpm_user, qc.swtpm_group, uid, gid, e) < 0) {
    sp_err_prefix(e, "swtpm_user/swtpm_group of %s", qemu_conf);
    e->code = SP_EXIT_FAILED;
    return -1;
  }
  return 0;
}

/* The new state, complete and fsynced, in <parent>/.<name>.stillpoint-new. */
static int write_new(int pfd, const char *tmp, const struct sp_tree *t, uid_t uid, gid_t gid,
                     struct sp_err *e)
{
  if (mkdirat(pfd, tmp, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s", tmp);
  _cleanup_close_ int tfd = openat(pfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd < 0 || fchown(tfd, uid, gid) < 0 || fchmod(tfd, 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot prepare %s", tmp);
  for (size_t i = 0; i < t->n; i++) {
    const struct sp_blob *b = &t->files[i];
    if (sp_write_file_at(tfd, b->name, b->data, b->len, 0600, e) < 0)
      return -1;
    if (fchownat(tfd, b->name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot give %s to %u:%u", b->name,
                        (unsigned)uid, (unsigned)gid);
  }
  if (fsync(tfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", tmp);
  return 0;
}

/* Empties a directory that holds only hidden files (swtpm's .lock), so
 * that rename(2) may replace it; false, with nothing removed, when it
 * holds anything else (it is then moved aside whole). */
static bool clear_if_only_hidden(int pfd, const char *name)
{
  int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return false;
  _cleanup_closedir_ DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return false;
  }
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.')
      return false;
  rewinddir(d);
  bool cleared = true;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      cleared &= unlinkat(dirfd(d), de->d_name, 0) == 0;
  return cleared;
}

/* Moves the old directory out of the way: .../tpm2.replaced-<UTC>. */
static int move_aside(int pfd, const char *parent, const char *name, char **aside,
                      struct sp_err *e)
{
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  for (int seq = 1; seq < 100; seq++) {
    char rel[NAME_MAX + 1], suffix[16] = "";
    if (seq > 1)
      snprintf(suffix, sizeof suffix, "-%d", seq);
    snprintf(rel, sizeof rel, "%s.replaced-%s%s", name, stamp, suffix);
    if (renameat2(pfd, name, pfd, rel, RENAME_NOREPLACE) == 0) {
      *aside = sp_xasprintf("%s/%s", parent, rel);
      return 0;
    }
    if (errno != EEXIST)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot move %s/%s aside", parent, name);
  }
  return sp_err_set(e, SP_EXIT_FAILED, "cannot move %s/%s aside: too many old copies", parent,
                    name);
}

int sp_tpm_install(const char *state_dir, const struct sp_tree *t, uid_t uid, gid_t gid,
                   bool keep_old, char **kept_as, struct sp_err *e)
{
  *kept_as = NULL;
  _cleanup_free_ char *pcopy = sp_xstrdup(state_dir), *ncopy = sp_xstrdup(state_dir);
  const char *parent = dirname(pcopy), *name = basename(ncopy);
  char tmp[NAME_MAX + 1];
  if (!sp_name_ok(name) || snprintf(tmp, sizeof tmp, ".%s.stillpoint-new", name) >= (int)sizeof tmp)
    return sp_err_set(e, SP_EXIT_FAILED, "'%s' cannot be a TPM state directory", state_dir);
  /* libvirt makes the per-VM directory 0711 root so swtpm can reach its
   * own; made or repaired to that, whatever the umask of whoever ran
   * first (a 0700 one keeps swtpm out and the VM from starting). */
  _cleanup_free_ char *gcopy = sp_xstrdup(parent);
  if (sp_mkdir_p(dirname(gcopy), 0711, e) < 0 || sp_dir_ensure(parent, 0711, 0, 0, e) < 0)
    return -1;
  _cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", parent);
  _cleanup_free_ char *tmp_path = sp_path_join(parent, tmp);
  if (sp_rm_rf(tmp_path, e) < 0 || write_new(pfd, tmp, t, uid, gid, e) < 0) {
    struct sp_err ignored = { 0 };
    sp_rm_rf(tmp_path, &ignored);
    return sp_err_prefix(e, "TPM state for %s", state_dir);
  }
  struct stat st;
  bool exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && !S_ISDIR(st.st_mode))
    return sp_err_set(e, SP_EXIT_FAILED, "%s exists and is not a directory: not replacing it",
                      state_dir);
  _cleanup_free_ char *aside = NULL;
  if (exists && !clear_if_only_hidden(pfd, name) && move_aside(pfd, parent, name, &aside, e) < 0)
    return -1;
  if (renameat(pfd, tmp, pfd, name) < 0) {
    int err = errno;
    /* The old state goes back where it was, the new one away. */
    if (aside)
      renameat(pfd, strrchr(aside, '/') + 1, pfd, name);
    struct sp_err ignored = { 0 };
    sp_rm_rf_at(pfd, tmp, &ignored);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot rename %s to %s", tmp_path, state_dir);
  }
  if (fsync(pfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", parent);
  if (aside && !keep_old)
    return sp_rm_rf(aside, e);
  *kept_as = steal_pointer(&aside);
  return 0;
}

int sp_nvram_install(const char *path, const struct sp_blob *b, struct sp_err *e)
{
  _cleanup_free_ char *pcopy = sp_xstrdup(path), *ncopy = sp_xstrdup(path);
  const char *dir = dirname(pcopy), *name = basename(ncopy);
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", dir);
  struct stat st;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
    return sp_err_set(e, SP_EXIT_FAILED, "%s is not a regular file: write the snapshot's "
                      "NVRAM there by hand", path);
  mode_t mode = b->mode & 0777 ? b->mode & 0777 : 0600;
  if (sp_write_file_at(dfd, name, b->data, b->len, mode, e) < 0)
    return -1;
  if (fchownat(dfd, name, b->uid, b->gid, AT_SYMLINK_NOFOLLOW) < 0 || fsync(dfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot finish %s", path);
  return 0;
}
