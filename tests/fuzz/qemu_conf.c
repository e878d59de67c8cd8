/* libFuzzer harness: libvirt's qemu.conf as stillpoint reads it
 * (common/qemu_conf.c), for the owners of the state it writes back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  struct sp_qemu_conf qc = { 0 };
  struct sp_err e = { 0 };
  if (sp_qemu_conf_parse(text, &qc, &e) == 0 &&
      (!qc.user || !qc.group || !qc.swtpm_user || !qc.swtpm_group))
    abort(); /* every owner is known, from the file or the defaults */
  sp_qemu_conf_free(&qc);
  free(text);
  return 0;
}
