#include "restore_plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsutil.h"
#include "state_locator.h"
#include "xalloc.h"

bool restore_path_system(const char *path)
{
  /* A file appearing here does something (cron, init, a library, a
   * shell profile), or it is state a daemon trusts. */
  static const char *const dirs[] = {
    "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/proc", "/sys", "/dev", "/run", "/root", "/var/spool", "/var/lib/stillpoint",
    "/var/lib/libvirt/qemu", "/var/lib/libvirt/swtpm", "/var/lib/libvirt/dnsmasq",
    "/var/lib/dpkg", "/var/lib/apt", "/var/lib/systemd", "/var/log",
  };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    size_t n = strlen(dirs[i]);
    if (strncmp(path, dirs[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
      return true;
  }
  return strcmp(path, "/") == 0 || strchr(path + 1, '/') == NULL; /* a file in / itself */
}

/* dir and file of an absolute plain path, malloc'd. */
static void split(const char *path, char **dir, char **file)
{
  const char *slash = strrchr(path, '/');
  *dir = sp_xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
  *file = sp_xstrdup(slash + 1);
}

static int plan_disk(const struct restore_plan_in *in, const struct sp_manifest_disk *d,
                     struct restore_plan_disk *pd, struct sp_err *e)
{
  pd->target = d->target;
  pd->recorded = d->source;
  /* A kept chain is copied as it is: qcow2, or the raw image of a
   * full-only copier; a flattened disk takes the VM disk's format. */
  if (in->keep_chain)
    pd->format = strcmp(d->image_format, "raw") == 0 ? "raw" : "qcow2";
  else
    pd->format = restore_plan_flat_format(d);
  if (in->disks_to) {
    pd->dir = sp_xstrdup(in->disks_to);
    pd->file = sp_xasprintf("%s.%s", d->target, pd->format);
    return 0;
  }
  if (in->replaced) {
    const struct sp_disk *old = sp_domain_disk(in->replaced, d->target);
    if (!old || !old->source || strcmp(old->type, "file") != 0 ||
        !sp_abspath_ok(old->source))
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s: the domain being replaced has no file "
                        "for it: restore the disks with --disks-to DIR", d->target);
    pd->replaces = true;
    split(old->source, &pd->dir, &pd->file);
    return 0;
  }
  if (!in->recorded)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s was %s%s when the point was taken: a point "
                      "does not choose where restore writes; restore with --disks-to DIR, or "
                      "with --recorded-paths to put the disks back where the point says",
                      d->target, d->source ? "at " : "a network disk",
                      d->source ? d->source : "");
  const struct sp_disk *x = in->point_dom ? sp_domain_disk(in->point_dom, d->target) : NULL;
  if (!d->source)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "disk %s had no file on the host (a network disk): "
                      "restore with --disks-to DIR", d->target);
  if (!x || !x->source || strcmp(x->source, d->source) != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "--recorded-paths: disk %s is at %s in the manifest "
                      "but at %s in the point's domain.xml: refusing a point that disagrees "
                      "with itself; restore with --disks-to DIR", d->target, d->source,
                      x && x->source ? x->source : "no file");
  if (!sp_abspath_ok(d->source) || restore_path_system(d->source))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "--recorded-paths: disk %s: %s is %s: refusing to "
                      "restore a disk there; restore with --disks-to DIR", d->target, d->source,
                      sp_abspath_ok(d->source) ? "in a system directory"
                                                    : "not a plain absolute path");
  split(d->source, &pd->dir, &pd->file);
  return 0;
}

static int plan_nvram(const struct restore_plan_in *in, struct restore_plan *p,
                      struct sp_err *e)
{
  const struct sp_manifest_state *nv = &in->m->nvram;
  const char *path = NULL;
  _cleanup_free_ char *own = NULL;
  if (in->replaced && in->replaced->nvram.type == SP_NVRAM_FILE && in->replaced->nvram.path &&
      sp_abspath_ok(in->replaced->nvram.path)) {
    path = in->replaced->nvram.path;
    p->nvram_replaces = true;
  } else if (in->recorded && in->point_dom && in->point_dom->nvram.path &&
             strcmp(nv->type, "file") == 0 && strcmp(in->point_dom->nvram.path, nv->host_path) == 0 &&
             sp_abspath_ok(nv->host_path) &&
             strncmp(nv->host_path, SP_LIBVIRT_NVRAM_DIR "/", strlen(SP_LIBVIRT_NVRAM_DIR) + 1) == 0) {
    path = nv->host_path;
  } else {
    /* libvirt's own place for a domain of this name (firmware='efi'
     * autoselection writes there too); with --replace the file already
     * there is the replaced domain's. */
    own = sp_xasprintf("%s/%s_VARS.fd", SP_LIBVIRT_NVRAM_DIR, in->name);
    path = own;
    p->nvram_replaces = in->replaced != NULL;
  }
  split(path, &p->nvram_dir, &p->nvram_file);
  return 0;
}

static int plan_tpm(const struct restore_plan_in *in, struct restore_plan *p, struct sp_err *e)
{
  const char *sub = strcmp(in->m->tpm.version, "2.0") == 0 ? "tpm2" : "tpm1.2";
  const struct sp_tpm *old = in->replaced ? &in->replaced->tpm : NULL;
  /* The replaced definition's own state directory, if it named one and
   * keeps its UUID; otherwise libvirt's for the restored UUID, with no
   * <source> in the XML (a clone must never share the original's). */
  if (old && old->backend == SP_TPM_EMULATOR && old->source_path &&
      sp_abspath_ok(old->source_path) && in->replaced->uuid &&
      strcmp(in->replaced->uuid, in->uuid) == 0) {
    p->tpm_source = true;
    p->tpm_dir = sp_xstrdup(old->source_path);
  } else {
    p->tpm_dir = sp_xasprintf("%s/%s/%s", SP_SWTPM_ROOT, in->uuid, sub);
  }
  return 0;
}

int restore_plan_make(const struct restore_plan_in *in, struct restore_plan *p,
                      struct sp_err *e)
{
  memset(p, 0, sizeof *p);
  if (in->disks_to && !sp_abspath_ok(in->disks_to))
    return sp_err_set(e, SP_EXIT_USAGE, "--disks-to %s: give a plain absolute path",
                      in->disks_to);
  p->disks = sp_xcalloc(in->m->ndisks ? in->m->ndisks : 1, sizeof *p->disks);
  for (size_t i = 0; i < in->m->ndisks; i++) {
    if (plan_disk(in, &in->m->disks[i], &p->disks[p->ndisks++], e) < 0)
      return -1;
    for (size_t k = 0; k < i; k++)
      if (strcmp(p->disks[k].dir, p->disks[i].dir) == 0 &&
          strcmp(p->disks[k].file, p->disks[i].file) == 0)
        return sp_err_set(e, SP_EXIT_PREFLIGHT, "disks %s and %s would both go to %s/%s",
                          p->disks[k].target, p->disks[i].target, p->disks[i].dir,
                          p->disks[i].file);
  }
  if (in->m->nvram.present && plan_nvram(in, p, e) < 0)
    return -1;
  if (in->m->tpm.present && plan_tpm(in, p, e) < 0)
    return -1;
  return 0;
}

void restore_plan_free(struct restore_plan *p)
{
  for (size_t i = 0; i < p->ndisks; i++) {
    free(p->disks[i].dir);
    free(p->disks[i].file);
  }
  free(p->disks);
  free(p->nvram_dir);
  free(p->nvram_file);
  free(p->tpm_dir);
  memset(p, 0, sizeof *p);
}

const char *restore_plan_flat_format(const struct sp_manifest_disk *d)
{
  return d->format && strcmp(d->format, "raw") == 0 ? "raw" : "qcow2";
}

bool restore_plan_flatten_by_copy(const struct sp_disk_chain *c, const char *format)
{
  if (c->n == 0 || strcmp(format, "qcow2") != 0)
    return false;
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->links[i].format, "qcow2") != 0 || c->links[i].vsize != c->links[0].vsize)
      return false;
  return true;
}
