/* libFuzzer harness: snapshot.json of the hook's state snapshots
 * (common/snapshot_meta.c): names become path components when a snapshot
 * is read or restored.  What parses must format and parse again to the
 * same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "snapshot_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sp_snapshot s = { 0 }, s2 = { 0 };
  struct sp_err e = { 0 };
  if (sp_snap_meta_parse((const char *)data, size, &s, &e) < 0) {
    if (!e.msg[0])
      abort();
    sp_snapshot_free(&s);
    return 0;
  }
  char *out = sp_snap_meta_format(&s), *out2 = NULL;
  if (!out || sp_snap_meta_parse(out, strlen(out), &s2, &e) < 0)
    abort();
  if (!(out2 = sp_snap_meta_format(&s2)) || strcmp(out, out2) != 0)
    abort();
  free(out);
  free(out2);
  sp_snapshot_free(&s2);
  sp_snapshot_free(&s);
  return 0;
}
