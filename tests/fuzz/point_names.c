/* libFuzzer harness: the names a point hands to the file system - point
 * ids, disk targets, snapshot ids, relative and absolute paths, UUIDs
 * (common/point_layout.c, manifest.c, fsutil.c, state_snapshots.c).  What
 * each accepts must be a single safe name or a path that cannot leave
 * its base, and an id it accepts must be one stillpoint makes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "fsutil.h"
#include "manifest.h"
#include "point_layout.h"
#include "state_snapshots.h"
#include "uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_dotdot(const char *p)
{
  for (const char *c = p; (c = strstr(c, "..")); c += 2)
    if ((c == p || c[-1] == '/') && (c[2] == '/' || c[2] == '\0'))
      return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  if (sp_point_id_valid(s)) {
    /* the form stillpoint makes: a directory name, and a .partial of it
     * is one too */
    char partial[SP_POINT_ID_MAX + sizeof SP_PARTIAL_SUFFIX];
    if (!sp_name_ok(s) || strlen(s) >= SP_POINT_ID_MAX || s[16] != '-')
      abort();
    snprintf(partial, sizeof partial, "%s%s", s, SP_PARTIAL_SUFFIX);
    if (!sp_name_ok(partial) || sp_point_id_valid(partial))
      abort();
  }
  if (sp_target_valid(s) && (!sp_name_ok(s) || strchr(s, '\'')))
    abort();
  if (sp_snap_id_ok(s) && !sp_name_ok(s))
    abort();
  if (sp_name_ok(s) && (strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..")))
    abort();
  if (sp_relpath_ok(s) && (s[0] == '/' || has_dotdot(s) || strstr(s, "//")))
    abort();
  if (sp_abspath_ok(s) && (s[0] != '/' || has_dotdot(s) || strstr(s, "//")))
    abort();
  if (sp_uuid_ok(s) && strlen(s) != 36)
    abort();
  free(s);
  return 0;
}
