/* sp-sha256 FILE...: prints each file's digest as sha256sum(1) does, through
 * the agent's own whole-file hash (sp_sha256_file: O_DIRECT, reading and
 * hashing overlapped).  For tests/bench/hash; not installed. */
#include <stdio.h>

#include "sha256.h"

int main(int argc, char **argv)
{
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    char hex[SP_SHA256_HEX_LEN + 1];
    struct sp_err e = { 0 };
    if (sp_sha256_file(argv[i], hex, &e) < 0) {
      fprintf(stderr, "sp-sha256: %s\n", e.msg);
      rc = 1;
      continue;
    }
    printf("%s  %s\n", hex, argv[i]);
  }
  return rc;
}
