#include "efi_varstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* PiFirmwareVolume.h / VariableFormat.h offsets and constants. */
enum {
  FVH_FVLENGTH = 32,
  FVH_SIGNATURE = 40,
  FVH_HEADER_LENGTH = 48,
  FVH_MIN = 56 + 8,        /* fixed part and one block map entry + terminator */
  STORE_HEADER = 28,       /* GUID(16) Size(4) Format(1) State(1) Reserved(2+4) */
  STORE_FORMATTED = 0x5A,
  STORE_HEALTHY = 0xFE,
  START_ID = 0x55AA,
  AUTH_HEADER = 60,        /* StartId State Reserved Attributes MonotonicCount(8)
                              TimeStamp(16) PubKeyIndex NameSize DataSize GUID */
  PLAIN_HEADER = 32,       /* StartId State Reserved Attributes NameSize DataSize GUID */
};

/* EFI_SYSTEM_NV_DATA_FV_GUID fff12b8d-7696-4c8b-a985-2747075b4f50 */
static const uint8_t nv_fv_guid[16] = { 0x8d, 0x2b, 0xf1, 0xff, 0x96, 0x76, 0x8b, 0x4c,
                                        0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50 };
/* gEfiAuthenticatedVariableGuid aaf32c78-947b-439a-a180-2e144ec37792 */
static const uint8_t auth_store_guid[16] = { 0x78, 0x2c, 0xf3, 0xaa, 0x7b, 0x94, 0x9a, 0x43,
                                             0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92 };
/* gEfiVariableGuid ddcf3616-3275-4164-98b6-fe85707ffe7d */
static const uint8_t plain_store_guid[16] = { 0x16, 0x36, 0xcf, 0xdd, 0x75, 0x32, 0x64, 0x41,
                                              0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d };

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

static size_t put_utf8(char *out, uint32_t c)
{
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xC0 | c >> 6);
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | c >> 12);
    out[1] = (char)(0x80 | (c >> 6 & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | c >> 18);
  out[1] = (char)(0x80 | (c >> 12 & 0x3F));
  out[2] = (char)(0x80 | (c >> 6 & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

char *efi_utf16_to_utf8(const uint8_t *p, size_t len)
{
  size_t units = len / 2;
  /* Each unit becomes at most 3 bytes (a pair: 4 bytes for 2 units). */
  char *out = sp_xmalloc(units * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < units; i++) {
    uint32_t c = le16(p + 2 * i);
    if (c == 0)
      break;
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < units) {
      uint32_t lo = le16(p + 2 * (i + 1));
      if (lo >= 0xDC00 && lo < 0xE000) {
        c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
        i++;
      } else {
        c = 0xFFFD;
      }
    } else if (c >= 0xD800 && c < 0xE000) {
      c = 0xFFFD;
    }
    o += put_utf8(out + o, c);
  }
  out[o] = '\0';
  return out;
}

void efi_guid_text(const efi_guid_t *g, char buf[37])
{
  const uint8_t *b = (const uint8_t *)g;
  snprintf(buf, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(b), le16(b + 4),
           le16(b + 6), b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void efi_var_attr_text(uint32_t a, char *buf, size_t size)
{
  static const struct {
    uint32_t bit;
    const char *name;
  } names[] = {
    { EFI_VAR_NON_VOLATILE, "NV" },
    { EFI_VAR_BOOTSERVICE_ACCESS, "BS" },
    { EFI_VAR_RUNTIME_ACCESS, "RT" },
    { EFI_VAR_HARDWARE_ERROR_RECORD, "HR" },
    { EFI_VAR_AUTHENTICATED_WRITE_ACCESS, "AW" },
    { EFI_VAR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS, "AT" },
    { EFI_VAR_ENHANCED_AUTHENTICATED_ACCESS, "EA" },
  };
  size_t o = 0;
  buf[0] = '\0';
  uint32_t rest = a;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!(a & names[i].bit))
      continue;
    rest &= ~names[i].bit;
    int n = snprintf(buf + o, size - o, "%s%s", o ? "," : "", names[i].name);
    if (n < 0 || (size_t)n >= size - o)
      return;
    o += (size_t)n;
  }
  if (rest)
    snprintf(buf + o, size - o, "%s0x%x", o ? "," : "", rest);
}

static int add_var(struct efi_varstore *s, size_t *cap, struct sp_err *e)
{
  if (s->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    s->vars = sp_xreallocarray(s->vars, nc, sizeof *s->vars);
    *cap = nc;
  }
  memset(&s->vars[s->n++], 0, sizeof s->vars[0]);
  return 0;
}

/* Orders candidate records by GUID, name, then file offset. */
static int by_key(const void *a, const void *b)
{
  const struct efi_var *x = *(const struct efi_var *const *)a;
  const struct efi_var *y = *(const struct efi_var *const *)b;
  int c = memcmp(&x->guid, &y->guid, sizeof x->guid);
  if (!c)
    c = strcmp(x->name, y->name);
  if (!c)
    c = x->offset < y->offset ? -1 : x->offset > y->offset;
  return c;
}

static int mark_live(struct efi_varstore *s, struct sp_err *e)
{
  struct efi_var **cand = sp_xreallocarray(NULL, s->n ? s->n : 1, sizeof *cand);
  size_t nc = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->vars[i].state == EFI_VAR_ADDED || s->vars[i].state == EFI_VAR_IN_DELETED_TRANSITION)
      cand[nc++] = &s->vars[i];
  qsort(cand, nc, sizeof *cand, by_key);
  for (size_t i = 0; i < nc;) {
    size_t j = i;
    struct efi_var *added = NULL, *transition = NULL;
    while (j < nc && memcmp(&cand[j]->guid, &cand[i]->guid, sizeof cand[i]->guid) == 0 &&
           strcmp(cand[j]->name, cand[i]->name) == 0) {
      if (cand[j]->state == EFI_VAR_ADDED)
        added = cand[j];
      else
        transition = cand[j];
      j++;
    }
    struct efi_var *live = added ? added : transition; /* one of them: both states qualify */
    if (live) {
      live->live = true;
      s->nlive++;
    }
    i = j;
  }
  free(cand);
  for (size_t i = 0; i < s->n; i++)
    if (!s->vars[i].live)
      s->reclaimable += s->vars[i].record_len;
  return 0;
}

static int parse_headers(const uint8_t *img, size_t len, struct efi_varstore *s,
                         struct sp_err *e)
{
  if (len < FVH_MIN || memcmp(img + FVH_SIGNATURE, "_FVH", 4) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "not a UEFI firmware volume (no _FVH signature): "
                      "is this an OVMF/AAVMF NVRAM (*_VARS.fd) file?");
  if (memcmp(img + 16, nv_fv_guid, 16) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "a firmware volume, but not one of variables "
                      "(its file system GUID is not EFI_SYSTEM_NV_DATA_FV_GUID)");
  uint64_t fvlen = le64(img + FVH_FVLENGTH);
  size_t hlen = le16(img + FVH_HEADER_LENGTH);
  if (fvlen > len)
    return sp_err_set(e, SP_EXIT_FAILED, "the firmware volume claims %llu bytes, the file "
                      "holds %zu: truncated NVRAM file", (unsigned long long)fvlen, len);
  if (hlen < FVH_MIN || hlen + STORE_HEADER > fvlen)
    return sp_err_set(e, SP_EXIT_FAILED, "firmware volume header length %zu is impossible",
                      hlen);
  const uint8_t *st = img + hlen;
  if (memcmp(st, auth_store_guid, 16) == 0)
    s->authenticated = true;
  else if (memcmp(st, plain_store_guid, 16) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "unknown variable store signature GUID");
  uint32_t size = le32(st + 16);
  if (size < STORE_HEADER || size > fvlen - hlen)
    return sp_err_set(e, SP_EXIT_FAILED, "variable store size %u does not fit its volume",
                      size);
  if (st[20] != STORE_FORMATTED || st[21] != STORE_HEALTHY)
    return sp_err_set(e, SP_EXIT_FAILED, "variable store not formatted or not healthy "
                      "(format 0x%02x, state 0x%02x)", st[20], st[21]);
  s->store_offset = hlen;
  s->store_size = size;
  s->vars_start = align4(hlen + STORE_HEADER);
  return 0;
}

int efi_varstore_parse(const uint8_t *img, size_t len, struct efi_varstore *s,
                       struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  if (parse_headers(img, len, s, e) < 0)
    return -1;
  const size_t end = s->store_offset + s->store_size;
  const size_t hsize = s->authenticated ? AUTH_HEADER : PLAIN_HEADER;
  size_t off = s->vars_start, cap = 0;
  int rc = 0;
  while (rc == 0 && off <= end && end - off >= hsize && le16(img + off) == START_ID) {
    const uint8_t *h = img + off;
    uint8_t state = h[2];
    uint32_t attrs = le32(h + 4);
    const uint8_t *sizes = h + hsize - 24; /* NameSize, DataSize, GUID end every header */
    size_t name_size = le32(sizes), data_size = le32(sizes + 4);
    /* edk2's NameSizeOfVariable/DataSizeOfVariable: a header still being
     * written counts as one without name and data. */
    if (state == 0xFF || attrs == UINT32_MAX || name_size == UINT32_MAX ||
        data_size == UINT32_MAX)
      name_size = data_size = 0;
    size_t name_off = off + hsize, room = end - name_off;
    if (name_size > room || data_size > room - name_size) {
      if (state != EFI_VAR_ADDED && state != EFI_VAR_IN_DELETED_TRANSITION)
        break; /* caught while being written: the variables end here */
      rc = sp_err_set(e, SP_EXIT_FAILED, "variable at offset 0x%zx runs past the end of the "
                      "store (name %zu, data %zu bytes)", off, name_size, data_size);
      break;
    }
    if ((rc = add_var(s, &cap, e)) < 0)
      break;
    struct efi_var *v = &s->vars[s->n - 1];
    v->state = state;
    v->attributes = attrs;
    memcpy(&v->guid, sizes + 8, sizeof v->guid);
    if (s->authenticated)
      v->monotonic_count = le64(h + 8);
    v->offset = off;
    v->data = img + name_off + name_size;
    v->data_len = data_size;
    v->record_len = align4(hsize + name_size + data_size);
    v->name = efi_utf16_to_utf8(img + name_off, name_size);
    off = align4(name_off + name_size + data_size);
  }
  s->vars_end = off < end ? off : end;
  s->free_bytes = end - s->vars_end;
  if (rc == 0)
    rc = mark_live(s, e);
  if (rc < 0)
    efi_varstore_free(s);
  return rc;
}

void efi_varstore_free(struct efi_varstore *s)
{
  for (size_t i = 0; i < s->n; i++)
    free(s->vars[i].name);
  free(s->vars);
  memset(s, 0, sizeof *s);
}

const struct efi_var *efi_varstore_find(const struct efi_varstore *s, const char *name,
                                        const efi_guid_t *guid)
{
  for (size_t i = 0; i < s->n; i++)
    if (s->vars[i].live && strcmp(s->vars[i].name, name) == 0 &&
        memcmp(&s->vars[i].guid, guid, sizeof *guid) == 0)
      return &s->vars[i];
  return NULL;
}
