/* libFuzzer harness: the qcow2 header of a point's image, read by our own
 * parser before qemu-img ever sees the file (agent/image_check.c).  It
 * must never read outside what it was given, and what it reports must be
 * bounded strings; the policy then runs on every header it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* A copy of exactly size bytes: ASan catches any read past it. */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  struct sp_qcow2_header h;
  struct sp_err e = { 0 };
  if (sp_qcow2_header_parse(buf, size, &h, &e) == 0) {
    if (strlen(h.backing) >= sizeof h.backing || strlen(h.data_file_name) >= sizeof h.data_file_name ||
        strlen(h.backing_format) >= sizeof h.backing_format || (h.version != 2 && h.version != 3))
      abort();
    int none = sp_qcow2_header_check(&h, "img", NULL, &e);
    int own = sp_qcow2_header_check(&h, "img", h.has_backing ? h.backing : "x", &e);
    /* nothing with a data file or encryption ever passes */
    if ((none == 0 || own == 0) && (h.data_file || h.crypt_method || h.encryption_header))
      abort();
    if (none == 0 && h.has_backing)
      abort();
  } else if (!e.msg[0]) {
    abort();
  }
  free(buf);
  return 0;
}
