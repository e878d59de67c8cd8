#include "state_locator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"

const char *sp_tpm_subdir(const char *version)
{
  if (version && strcmp(version, "2.0") == 0)
    return "tpm2";
  if (version && strcmp(version, "1.2") == 0)
    return "tpm1.2";
  return NULL;
}

static void id_names(struct sp_file_info *fi)
{
  char buf[4096];
  struct passwd pw, *pr = NULL;
  struct group gr, *grr = NULL;
  if (getpwuid_r(fi->uid, &pw, buf, sizeof buf, &pr) == 0 && pr)
    snprintf(fi->owner, sizeof fi->owner, "%s", pr->pw_name);
  else
    snprintf(fi->owner, sizeof fi->owner, "%u", (unsigned)fi->uid);
  if (getgrgid_r(fi->gid, &gr, buf, sizeof buf, &grr) == 0 && grr)
    snprintf(fi->group, sizeof fi->group, "%s", grr->gr_name);
  else
    snprintf(fi->group, sizeof fi->group, "%u", (unsigned)fi->gid);
}

int sp_file_info(const char *path, struct sp_file_info *fi, struct sp_err *e)
{
  memset(fi, 0, sizeof *fi);
  fi->path = strdup(path);
  if (!fi->path)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "%s", path);
  struct stat st;
  if (stat(path, &st) < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    /* EACCES on a parent: it exists as far as we can tell, unreadable. */
    fi->exists = true;
    return 0;
  }
  fi->exists = true;
  fi->uid = st.st_uid;
  fi->gid = st.st_gid;
  fi->mode = st.st_mode & 07777;
  fi->size = (long long)st.st_size;
  int want = S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK;
  fi->readable = faccessat(AT_FDCWD, path, want, AT_EACCESS) == 0;
  id_names(fi);
  return 0;
}

void sp_file_info_free(struct sp_file_info *fi)
{
  free(fi->path);
  fi->path = NULL;
}

/* The first ancestor of path that this process cannot search, with its
 * owner: that is what the user has to change. */
static bool blocking_ancestor(const char *path, struct sp_file_info *out)
{
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    bool blocked = faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) != 0;
    struct sp_err ignored = { 0 };
    if (blocked && sp_file_info(buf, out, &ignored) == 0 && out->owner[0])
      return true;
    if (blocked)
      sp_file_info_free(out);
    *p = '/';
  }
  return false;
}

void sp_access_hint(const struct sp_file_info *fi, const char *what, char *buf, size_t size)
{
  struct sp_file_info anc = { 0 };
  if (!fi->owner[0] && blocking_ancestor(fi->path, &anc)) {
    snprintf(buf, size, "%s %s cannot be reached: its directory %s is owned by %s:%s mode "
             "%04o: run as root or add this user to group %s", what, fi->path, anc.path,
             anc.owner, anc.group, (unsigned)anc.mode, anc.group);
    sp_file_info_free(&anc);
    return;
  }
  if (!fi->owner[0]) {
    snprintf(buf, size, "%s %s cannot be examined: run as root", what, fi->path);
    return;
  }
  snprintf(buf, size, "%s %s is owned by %s:%s mode %04o: run as root or add this user to "
           "group %s", what, fi->path, fi->owner, fi->group, (unsigned)fi->mode, fi->group);
}

static int list_files(struct sp_host *h, struct sp_tpm_location *loc, struct sp_err *e)
{
  char **names = NULL;
  size_t n = 0;
  struct sp_err le = { 0 };
  if (h->ops->list_dir(h, loc->state_dir, &names, &n, &le) < 0) {
    loc->listable = false;
    return 0;
  }
  loc->listable = true;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    /* .lock belongs to the running swtpm; never captured or restored. */
    if (rc == 0 && strcmp(names[i], ".lock") != 0) {
      struct sp_file_info *nf = realloc(loc->files, (loc->nfiles + 1) * sizeof *nf);
      _cleanup_free_ char *p = sp_path_join(loc->state_dir, names[i]);
      if (nf)
        loc->files = nf;
      if (!nf || !p) {
        rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "listing %s", loc->state_dir);
      } else {
        rc = h->ops->file_info(h, p, &loc->files[loc->nfiles], e);
        if (rc == 0)
          loc->nfiles++;
      }
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int sp_host_tpm_locate(struct sp_host *h, const struct sp_domain *d, const char *swtpm_root,
                       struct sp_tpm_location *loc, struct sp_err *e)
{
  memset(loc, 0, sizeof *loc);
  if (d->tpm.backend != SP_TPM_EMULATOR)
    return sp_err_set(e, SP_EXIT_FAILED, "domain %s has no emulated TPM", d->name);
  loc->subdir = sp_tpm_subdir(d->tpm.version);
  if (!loc->subdir)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "TPM version '%s' is not 2.0 or 1.2",
                      d->tpm.version ? d->tpm.version : "");
  if (d->tpm.source_path)
    loc->state_dir = strdup(d->tpm.source_path);
  else if (!d->uuid || asprintf(&loc->state_dir, "%s/%s/%s", swtpm_root, d->uuid,
                                loc->subdir) < 0)
    loc->state_dir = NULL;
  if (!loc->state_dir)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot form the TPM state path of %s", d->name);
  if (h->ops->file_info(h, loc->state_dir, &loc->dir, e) < 0)
    return -1;
  return list_files(h, loc, e);
}

int sp_tpm_locate(const struct sp_domain *d, const char *swtpm_root,
                  struct sp_tpm_location *loc, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_tpm_locate(&local, d, swtpm_root, loc, e);
}

void sp_tpm_location_free(struct sp_tpm_location *loc)
{
  for (size_t i = 0; i < loc->nfiles; i++)
    sp_file_info_free(&loc->files[i]);
  free(loc->files);
  free(loc->state_dir);
  sp_file_info_free(&loc->dir);
  memset(loc, 0, sizeof *loc);
}
