#include "restore_disks.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"

static int qemu_img(char *const argv[], struct sp_err *e)
{
  struct sp_run_result r;
  if (sp_run(argv, NULL, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int rc = 0;
  if (r.status != 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "%s %s failed: %s", argv[0], argv[1],
                    r.err ? r.err : "");
  sp_run_result_free(&r);
  return rc;
}

/* The file name the i-th ancestor of a kept chain gets next to dest. */
static char *chain_copy_name(const char *dest, const struct sp_chain_link *l, size_t i)
{
  char *p = NULL;
  if (i == 0)
    return strdup(dest);
  return asprintf(&p, "%s.%s", dest, l->id) < 0 ? NULL : p;
}

static int keep_chain(const struct sp_disk_chain *c, const char *dest, struct sp_err *e)
{
  /* Oldest first, so every backing file exists when its overlay is made. */
  for (size_t k = c->n; k-- > 0;) {
    const struct sp_chain_link *l = &c->links[k];
    _cleanup_free_ char *to = chain_copy_name(dest, l, k);
    if (!to)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
    if (sp_copy_file(l->image, to, 0600, e) < 0)
      return -1;
    if (k + 1 < c->n) {
      _cleanup_free_ char *parent = chain_copy_name(dest, &c->links[k + 1], k + 1);
      _cleanup_free_ char *pcopy = parent ? strdup(parent) : NULL;
      if (!pcopy)
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "restore");
      /* Relative to the overlay: the chain stays valid if the directory moves. */
      char *argv[] = { "qemu-img", "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
                       basename(pcopy), to, NULL };
      if (qemu_img(argv, e) < 0)
        return -1;
    }
  }
  return 0;
}

int restore_disk(const struct sp_disk_chain *c, const char *dest, const char *format,
                 bool keep, struct sp_err *e)
{
  if (sp_exists(dest))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s exists: refusing to overwrite it", dest);
  if (keep)
    return keep_chain(c, dest, e);
  const struct sp_chain_link *top = &c->links[0];
  char *argv[] = { "qemu-img", "convert", "-q", "-f", top->format, "-O", (char *)format,
                   top->image, (char *)dest, NULL };
  if (qemu_img(argv, e) < 0)
    return -1;
  if (chmod(dest, 0600) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "chmod %s", dest);
  return 0;
}

void restore_disk_undo(const struct sp_disk_chain *c, const char *dest, bool keep)
{
  for (size_t k = 0; k < (keep ? c->n : 1); k++) {
    _cleanup_free_ char *p = chain_copy_name(dest, &c->links[k], k);
    if (p)
      unlink(p);
  }
}
