/* libFuzzer harness: an NVRAM file as inspect reads it - the variable
 * store (efi_varstore.c) and what nvram_info.c builds on it (signature
 * lists of PK/KEK/db/dbx, BootOrder, Boot#### with libefivar's device
 * path text).  The seeds are small stores built like OVMF's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nvram_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t *img = malloc(size ? size : 1);
  if (!img)
    return 0;
  memcpy(img, data, size);
  struct nvram_info ni;
  struct sp_err e = { 0 };
  if (nvram_info_parse(img, size, &ni, &e) == 0) /* takes img either way */
    nvram_info_free(&ni);
  return 0;
}
