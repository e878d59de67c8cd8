/* Boot entries: EFI_LOAD_OPTION (the data of Boot####, UEFI 2.10, 3.1.3)
 * and BootOrder.  A load option is Attributes, FilePathListLength, a
 * NUL-terminated UCS-2 Description, the device path list and optional
 * data; the device path is turned into text by libefivar
 * (efidp_format_device_path), after its nodes were checked to lie inside
 * the list. */
#ifndef SP_EFI_LOADOPT_H
#define SP_EFI_LOADOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum {
  EFI_LOAD_OPTION_ACTIVE = 0x1,
  EFI_LOAD_OPTION_FORCE_RECONNECT = 0x2,
  EFI_LOAD_OPTION_HIDDEN = 0x8,
};

struct efi_loadopt {
  uint32_t attributes;
  char *description;  /* UTF-8 */
  char *path;         /* device path as text, e.g. "PciRoot(0x0)/Pci(0x3,0x0)" */
  size_t optional_len;
};

int efi_loadopt_parse(const uint8_t *data, size_t len, struct efi_loadopt *o, struct sp_err *e);
void efi_loadopt_free(struct efi_loadopt *o);

/* BootOrder: an array of 16-bit option numbers.  *order is malloc'd
 * (NULL when n is 0). */
int efi_bootorder_parse(const uint8_t *data, size_t len, uint16_t **order, size_t *n,
                        struct sp_err *e);

/* Whether name is "Boot" followed by four hex digits; *num gets them. */
bool efi_boot_var_name(const char *name, uint16_t *num);

#endif
