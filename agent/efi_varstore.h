/* OVMF's UEFI variable store (a *_VARS.fd NVRAM file), parsed with the
 * format's own structures (edk2 MdeModulePkg VariableFormat.h and
 * PiFirmwareVolume.h), all little endian:
 *   EFI_FIRMWARE_VOLUME_HEADER   "_FVH" at 40, HeaderLength at 48
 *   VARIABLE_STORE_HEADER        at HeaderLength: GUID, Size, Format 0x5A, State 0xFE
 *   variables                    4-byte aligned headers (60 bytes authenticated,
 *                                32 plain), UTF-16LE name, data, until a
 *                                StartId that is not 0x55AA; then free 0xFF.
 * The file is untrusted input (it comes from a backup point or a VM): every
 * size is checked against the store before it is used, and nothing is
 * copied that the caller does not ask for. */
#ifndef SP_EFI_VARSTORE_H
#define SP_EFI_VARSTORE_H

#include <efivar/efivar.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "xalloc.h"

/* Variable states as edk2 writes them; a state only ever loses bits. */
enum {
  EFI_VAR_HEADER_VALID_ONLY = 0x7F,
  EFI_VAR_ADDED = 0x3F,
  EFI_VAR_IN_DELETED_TRANSITION = 0x3E,
};

/* Attribute bits (UEFI 2.10, 8.2). */
enum {
  EFI_VAR_NON_VOLATILE = 0x1,
  EFI_VAR_BOOTSERVICE_ACCESS = 0x2,
  EFI_VAR_RUNTIME_ACCESS = 0x4,
  EFI_VAR_HARDWARE_ERROR_RECORD = 0x8,
  EFI_VAR_AUTHENTICATED_WRITE_ACCESS = 0x10,
  EFI_VAR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20,
  EFI_VAR_ENHANCED_AUTHENTICATED_ACCESS = 0x80,
};

struct efi_var {
  char *name;              /* UTF-8 (unpaired surrogates become U+FFFD) */
  efi_guid_t guid;
  uint32_t attributes;
  uint8_t state;
  bool live;               /* the copy the firmware uses (see efi_varstore_parse) */
  uint64_t monotonic_count;
  const uint8_t *data;     /* into the parsed image: valid while it is */
  size_t data_len;
  size_t offset;           /* of the header in the file */
  size_t record_len;       /* header + name + data, aligned */
};

struct efi_varstore {
  bool authenticated;      /* authenticated headers (OVMF with SMM) or plain */
  size_t store_offset;     /* of the variable store header */
  size_t store_size;       /* its Size field: header + variables + free */
  size_t vars_start, vars_end; /* variables region; vars_end = first free byte */
  size_t free_bytes;       /* store end - vars_end: room before the firmware reclaims */
  size_t reclaimable;      /* bytes of records no longer live */
  struct efi_var *vars;    /* every record, in file order */
  size_t n;
  size_t nlive;
};

/* Parses img (the whole NVRAM file).  A live variable is a record in state
 * ADDED (the last such copy of a name and GUID), or IN_DELETED_TRANSITION
 * when no ADDED copy exists - the rules edk2 applies after a replace was
 * interrupted.  A header caught while being written ends the list, as it
 * does for the firmware. */
int efi_varstore_parse(const uint8_t *img, size_t len, struct efi_varstore *s,
                       struct sp_err *e);
void efi_varstore_free(struct efi_varstore *s);

/* The live variable name/guid, or NULL. */
const struct efi_var *efi_varstore_find(const struct efi_varstore *s, const char *name,
                                        const efi_guid_t *guid);

/* "NV,BS,RT,AT" and the like into buf. */
void efi_var_attr_text(uint32_t attributes, char *buf, size_t size);
/* Lowercase 36-character form into buf (37 bytes). */
void efi_guid_text(const efi_guid_t *g, char buf[37]);

/* UTF-16LE (len bytes, stops at the first NUL) to a malloc'd UTF-8 string;
 * NULL only when out of memory. */
SP_XALLOC char *efi_utf16_to_utf8(const uint8_t *p, size_t len);

#endif
