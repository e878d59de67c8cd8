#include "efi_loadopt.h"

#include <ctype.h>
#include <efivar/efivar.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "efi_varstore.h"
#include "xalloc.h"

/* libefivar's node formatters read a node's fixed fields without checking
 * the node's length (a short PCI node is read as if whole), and print
 * some strings up to their NUL.  The path is therefore formatted from a
 * copy followed by this many zero bytes, longer than any fixed node
 * structure, so such reads stay inside our buffer and see zeros. */
enum { DP_PAD = 4096 };

enum { DP_END_TYPE = 0x7F, DP_END_ENTIRE = 0xFF };

/* Nodes whose formatter in libefivar 37 (Debian 12) computes a length from
 * the node's own and would read (or memcpy) "negative" sizes from a
 * shorter one; the fuzzer found the first (a 6-byte hardware vendor node).
 * Each must be at least this long. */
static const struct {
  uint8_t type, subtype;
  uint16_t min;
} dp_min[] = {
  { 1, 4, 20 },  /* HW vendor: header + vendor GUID */
  { 2, 2, 19 },  /* ACPI HID_EX: HID, UID, CID and three NUL-terminated strings */
  { 3, 10, 20 }, /* messaging vendor */
  { 3, 16, 12 }, /* USB WWID: serial number of at least one UCS-2 character */
  { 3, 19, 18 }, /* iSCSI */
  { 3, 31, 5 },  /* DNS */
  { 4, 3, 20 },  /* media vendor */
  { 4, 4, 6 },   /* file path: at least its NUL */
};

static bool node_long_enough(const uint8_t *node, size_t nlen)
{
  for (size_t i = 0; i < sizeof dp_min / sizeof dp_min[0]; i++)
    if (node[0] == dp_min[i].type && node[1] == dp_min[i].subtype)
      return nlen >= dp_min[i].min;
  return true;
}

/* The nodes must tile the list exactly and end with End Entire. */
static int check_nodes(const uint8_t *dp, size_t len, struct sp_err *e)
{
  size_t off = 0;
  while (off < len) {
    if (len - off < 4)
      return sp_err_set(e, SP_EXIT_FAILED, "device path: truncated node at %zu", off);
    size_t nlen = (size_t)dp[off + 2] | (size_t)dp[off + 3] << 8;
    if (nlen < 4 || nlen > len - off || !node_long_enough(dp + off, nlen))
      return sp_err_set(e, SP_EXIT_FAILED, "device path: node at %zu (type %u/%u) has length "
                        "%zu", off, dp[off], dp[off + 1], nlen);
    if (dp[off] == DP_END_TYPE && dp[off + 1] == DP_END_ENTIRE)
      return 0;
    off += nlen;
  }
  return sp_err_set(e, SP_EXIT_FAILED, "device path: no end node");
}

static char *format_path(const uint8_t *dp, size_t len, struct sp_err *e)
{
  uint8_t *copy = sp_xcalloc(1, len + DP_PAD);
  memcpy(copy, dp, len);
  char *text = NULL;
  ssize_t need = efidp_format_device_path(NULL, 0, (const_efidp)copy, (ssize_t)len);
  if (need > 0 && (text = calloc(1, (size_t)need + 1)) &&
      efidp_format_device_path(text, (size_t)need + 1, (const_efidp)copy,
                               (ssize_t)len) < 0) {
    free(text);
    text = NULL;
  }
  /* libefivar keeps every error on a list of its own until cleared. */
  efi_error_clear();
  free(copy);
  if (!text)
    sp_err_set(e, SP_EXIT_FAILED, "device path: libefivar cannot format it");
  return text;
}

int efi_loadopt_parse(const uint8_t *data, size_t len, struct efi_loadopt *o, struct sp_err *e)
{
  memset(o, 0, sizeof *o);
  if (len < 6)
    return sp_err_set(e, SP_EXIT_FAILED, "load option: %zu bytes, too short", len);
  o->attributes = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                  (uint32_t)data[3] << 24;
  size_t dplen = (size_t)data[4] | (size_t)data[5] << 8;
  size_t off = 6, desc_end = off;
  while (desc_end + 1 < len && (data[desc_end] || data[desc_end + 1]))
    desc_end += 2;
  if (desc_end + 1 >= len)
    return sp_err_set(e, SP_EXIT_FAILED, "load option: description not terminated");
  off = desc_end + 2;
  if (dplen > len - off)
    return sp_err_set(e, SP_EXIT_FAILED, "load option: device path of %zu bytes, %zu left",
                      dplen, len - off);
  int rc = 0;
  o->description = efi_utf16_to_utf8(data + 6, desc_end - 6);
  if (check_nodes(data + off, dplen, e) < 0 || !(o->path = format_path(data + off, dplen, e)))
    rc = -1;
  o->optional_len = len - off - dplen;
  if (rc < 0)
    efi_loadopt_free(o);
  return rc;
}

void efi_loadopt_free(struct efi_loadopt *o)
{
  free(o->description);
  free(o->path);
  memset(o, 0, sizeof *o);
}

int efi_bootorder_parse(const uint8_t *data, size_t len, uint16_t **order, size_t *n,
                        struct sp_err *e)
{
  *order = NULL;
  *n = 0;
  if (len % 2)
    return sp_err_set(e, SP_EXIT_FAILED, "BootOrder: %zu bytes, not whole 16-bit entries", len);
  if (!len)
    return 0;
  *order = sp_xmalloc(len);
  for (size_t i = 0; i < len / 2; i++)
    (*order)[i] = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
  *n = len / 2;
  return 0;
}

bool efi_boot_var_name(const char *name, uint16_t *num)
{
  if (strncmp(name, "Boot", 4) != 0 || strlen(name) != 8)
    return false;
  unsigned v = 0;
  for (int i = 4; i < 8; i++) {
    if (!isxdigit((unsigned char)name[i]))
      return false;
    v = v * 16 + (unsigned)(isdigit((unsigned char)name[i]) ? name[i] - '0'
                                                            : (toupper((unsigned char)name[i]) - 'A' + 10));
  }
  *num = (uint16_t)v;
  return true;
}
