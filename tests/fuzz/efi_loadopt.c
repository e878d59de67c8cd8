/* libFuzzer harness: an EFI_LOAD_OPTION (Boot####) with its device path
 * formatted by libefivar, and BootOrder. */
#include <stdint.h>
#include <stdlib.h>

#include "efi_loadopt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct efi_loadopt o;
  struct sp_err e = { 0 };
  if (efi_loadopt_parse(data, size, &o, &e) == 0)
    efi_loadopt_free(&o);
  uint16_t *order;
  size_t n;
  if (efi_bootorder_parse(data, size, &order, &n, &e) == 0)
    free(order);
  return 0;
}
