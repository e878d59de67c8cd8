#include "tools.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"

/* The first executable regular file called name in PATH, malloc'd. */
static char *which(const char *name)
{
  const char *path = getenv("PATH");
  _cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
  if (!copy)
    return NULL;
  char *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    _cleanup_free_ char *full = sp_path_join(*dir ? dir : ".", name);
    struct stat st;
    if (full && full[0] == '/' && stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
        access(full, X_OK) == 0)
      return steal_pointer(&full);
  }
  return NULL;
}

int tools_find(struct tools *t, bool compress, struct sp_err *e)
{
  *t = (struct tools){ 0 };
  if (!(t->qemu_img = which("qemu-img")))
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-img not found in PATH (install qemu-utils)");
  if (!compress)
    return 0; /* the image is written by the copier itself */
  if (!(t->qemu_nbd = which("qemu-nbd")))
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-nbd not found in PATH (install qemu-utils)");
  if (!(t->env = which("env")))
    return sp_err_set(e, SP_EXIT_FAILED, "env not found in PATH (install coreutils)");
  return 0;
}

void tools_free(struct tools *t)
{
  free(t->qemu_img);
  free(t->qemu_nbd);
  free(t->env);
  *t = (struct tools){ 0 };
}
