/* libFuzzer harness: what the RADOS point store reads back from a pool
 * (ceph/point_names.c): commit records, index keys and lock cookies.  A record that
 * parses formats back to exactly its bytes; a key that parses is rebuilt
 * from its parts to exactly itself, so nothing read can name an object
 * outside the VM's own. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "point_names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sp_commit_record r;
  struct sp_err e = { 0 };
  if (sp_commit_record_parse((const char *)data, size, &r, &e) == 0) {
    char buf[SP_RADOS_RECORD_MAX];
    int n = sp_commit_record_format(&r, buf, sizeof buf);
    if (n < 0 || (size_t)n != size || memcmp(buf, data, size))
      abort();
  }
  char *key = malloc(size + 1);
  if (!key)
    return 0;
  memcpy(key, data, size);
  key[size] = '\0';
  struct sp_rados_key k;
  if (strlen(key) == size && sp_rados_key_parse(key, &k)) {
    char *again = k.kind == 'p' ? sp_rados_point_key(k.id) : sp_rados_pending_key(k.id, k.item);
    if (!again || strcmp(again, key))
      abort();
    free(again);
  }
  /* A lock cookie that parses names a host and pid formatted back as a
   * prefix of itself. */
  char host[256], buf[512];
  long pid;
  if (strlen(key) == size && sp_rados_holder_parse(key, host, sizeof host, &pid)) {
    int n = snprintf(buf, sizeof buf, "%s pid %ld ", host, pid);
    if (n < 0 || strncmp(buf, key, (size_t)n))
      abort();
  }
  free(key);
  return 0;
}
