/* What inspect reports of a UEFI NVRAM file: the variable store's use,
 * the Secure Boot state the firmware will compute at the next boot, the
 * key databases, the boot entries and every live variable.
 *
 * SecureBoot and SetupMode are volatile variables: OVMF computes them at
 * boot and never stores them.  From the store alone (edk2
 * AuthVariableLibInitialize): setup mode while no PK is enrolled; Secure
 * Boot on when a PK is enrolled and SecureBootEnable is 1 or absent. */
#ifndef SP_NVRAM_INFO_H
#define SP_NVRAM_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "efi_loadopt.h"
#include "efi_siglist.h"
#include "efi_varstore.h"
#include "err.h"

enum nvram_key { NVRAM_PK, NVRAM_KEK, NVRAM_DB, NVRAM_DBX, NVRAM_NKEYS };

struct nvram_keydb {
  const char *name;        /* "PK", "KEK", "db", "dbx" */
  bool present;
  struct efi_siglist list;
  char *error;             /* why the list could not be read, NULL when it could */
};

struct nvram_boot {
  uint16_t num;
  struct efi_loadopt opt;
  char *error;             /* the entry is malformed: why */
};

struct nvram_info {
  uint8_t *image;          /* the file; store points into it */
  size_t image_len;
  struct efi_varstore store;
  struct nvram_keydb keys[NVRAM_NKEYS];
  bool setup_mode;
  bool secure_boot;        /* at the next boot */
  int secure_boot_enable;  /* SecureBootEnable: 0, 1, or -1 when absent */
  bool custom_mode;
  bool has_boot_order;
  uint16_t *boot_order;
  size_t nboot_order;
  int boot_next;           /* BootNext, -1 when absent */
  struct nvram_boot *boot; /* Boot#### in number order */
  size_t nboot;
};

/* Takes ownership of image (malloc'd, len bytes) whatever the outcome.  A
 * store that cannot be parsed is an error; a malformed key database or
 * boot entry is reported in its own error field instead. */
int nvram_info_parse(uint8_t *image, size_t len, struct nvram_info *ni, struct sp_err *e);
void nvram_info_free(struct nvram_info *ni);

/* Well-known variables get a short role name for output and diffs:
 * "PK", "db", "BootOrder", "Boot0001", "SecureBootEnable"; NULL otherwise. */
const char *nvram_var_role(const struct efi_var *v);

#endif
