#include "state_locator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"
#include "strv.h"
#include "xalloc.h"

const char *sp_tpm_subdir(const char *version)
{
  if (version && strcmp(version, "2.0") == 0)
    return "tpm2";
  if (version && strcmp(version, "1.2") == 0)
    return "tpm1.2";
  return NULL;
}

static int list_files(struct sp_host *h, struct sp_tpm_location *loc, struct sp_err *e)
{
  _cleanup_(sp_strv_free) struct sp_strv names = SP_STRV_INIT;
  struct sp_err le = { 0 };
  if (h->ops->list_dir(h, loc->state_dir, &names, &le) < 0) {
    loc->listable = false;
    return 0;
  }
  loc->listable = true;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < names.n; i++) {
    /* .lock belongs to the running swtpm and TMP* is a write swtpm is
     * about to rename over a state file: neither is captured, so neither
     * needs to be readable. */
    if (sp_tree_entry_kind(names.v[i]) != SP_TREE_FILE)
      continue;
    loc->files = sp_xreallocarray(loc->files, loc->nfiles + 1, sizeof *loc->files);
    struct sp_file_info *fi = &loc->files[loc->nfiles];
    _cleanup_free_ char *p = sp_path_join(loc->state_dir, names.v[i]);
    if ((rc = h->ops->file_info(h, p, fi, e)) == 0 && !fi->exists)
      sp_file_info_free(fi); /* renamed away since the listing: not state */
    else if (rc == 0)
      loc->nfiles++;
  }
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
