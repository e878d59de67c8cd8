/* libFuzzer harness: RBD destinations as the copier contract names them
 * (ceph/rbd_spec.c), and their round trip: what parses formats back to
 * exactly the input, and every part is a name stillpoint accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rbd_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  struct sp_rbd_spec s;
  struct sp_err e = { 0 };
  if (sp_rbd_spec_parse(text, &s, &e) == 0) {
    char *back = sp_rbd_spec_format(&s, s.snap);
    if (!back || strcmp(back, text) || !sp_rbd_name_ok(s.pool, strlen(s.pool)) ||
        !sp_rbd_name_ok(s.image, strlen(s.image)))
      abort();
    free(back);
    sp_rbd_spec_free(&s);
  } else if (s.pool || s.image || !e.msg[0]) {
    abort();
  }
  free(text);
  return 0;
}
