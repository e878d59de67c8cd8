/* libFuzzer harness: EFI signature lists (the data of PK, KEK, db, dbx),
 * X.509 certificates in them read by OpenSSL. */
#include <stdint.h>

#include "efi_siglist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct efi_siglist l;
  struct sp_err e = { 0 };
  if (efi_siglist_parse(data, size, &l, &e) == 0) {
    for (size_t i = 0; i < l.n; i++)
      (void)efi_siglist_has(&l, &l.sigs[i]);
    efi_siglist_free(&l);
  }
  return 0;
}
