/* libFuzzer harness: SHA256SUMS of a point (common/point_layout.c).  Every
 * path it accepts stays inside the point, every hash is 64 lowercase hex
 * digits, and what it accepts written back in sha256sum's form parses to
 * the same list. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "manifest.h"
#include "point_layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sp_sums s, s2;
  struct sp_err e = { 0 };
  if (sp_sums_parse((const char *)data, size, &s, &e) < 0) {
    if (!e.msg[0] || s.n || s.v)
      abort();
    return 0;
  }
  size_t cap = 1, off = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (!sp_relpath_ok(s.v[i].path) || !sp_hex64_valid(s.v[i].sha256))
      abort();
    cap += strlen(s.v[i].path) + 68;
  }
  char *text = malloc(cap);
  if (!text)
    abort();
  text[0] = '\0';
  for (size_t i = 0; i < s.n; i++)
    off += (size_t)snprintf(text + off, cap - off, "%s  %s\n", s.v[i].sha256, s.v[i].path);
  if (sp_sums_parse(text, off, &s2, &e) < 0 || s2.n != s.n)
    abort();
  for (size_t i = 0; i < s.n; i++)
    if (strcmp(s.v[i].path, s2.v[i].path) != 0 || strcmp(s.v[i].sha256, s2.v[i].sha256) != 0)
      abort();
  sp_sums_find(&s, "manifest.json");
  free(text);
  sp_sums_free(&s2);
  sp_sums_free(&s);
  return 0;
}
