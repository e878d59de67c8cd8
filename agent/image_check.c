#include "image_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "xalloc.h"

enum {
  QCOW2_MAGIC = 0x514649fb,            /* "QFI\xfb" */
  EXT_END = 0,
  EXT_BACKING_FORMAT = 0xe2792aca,
  EXT_FEATURE_TABLE = 0x6803f857,
  EXT_BITMAPS = 0x23852875,
  EXT_ENCRYPTION = 0x0537be77,
  EXT_DATA_FILE = 0x44415441,
  INCOMPAT_DIRTY = 1 << 0,
  INCOMPAT_CORRUPT = 1 << 1,
  INCOMPAT_DATA_FILE = 1 << 2,
  INCOMPAT_COMPRESSION = 1 << 3,
  INCOMPAT_EXTL2 = 1 << 4,
  KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE |
                   INCOMPAT_COMPRESSION | INCOMPAT_EXTL2,
  MAX_CLUSTER_BITS = 21,
};

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
  return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* A name from the header: bounded, without NUL bytes. */
static int copy_name(const unsigned char *p, size_t n, char *out, size_t cap, const char *what,
                     struct sp_err *e)
{
  if (n >= cap)
    return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: %s longer than %zu bytes", what,
                      cap - 1);
  if (memchr(p, '\0', n))
    return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: %s holds a NUL byte", what);
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

int sp_qcow2_header_parse(const unsigned char *buf, size_t len, struct sp_qcow2_header *h,
                          struct sp_err *e)
{
  memset(h, 0, sizeof *h);
  if (len < 72 || be32(buf) != QCOW2_MAGIC)
    return sp_err_set(e, SP_EXIT_FAILED, "not a qcow2 image (no qcow2 header)");
  h->version = be32(buf + 4);
  if (h->version != 2 && h->version != 3)
    return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: version %u is not 2 or 3", h->version);
  uint64_t backing_off = be64(buf + 8);
  uint32_t backing_len = be32(buf + 16);
  h->cluster_bits = be32(buf + 20);
  h->size = be64(buf + 24);
  h->crypt_method = be32(buf + 32);
  if (h->cluster_bits < 9 || h->cluster_bits > MAX_CLUSTER_BITS)
    return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: cluster bits %u out of range",
                      h->cluster_bits);
  /* Header, extensions and backing name all lie in the first cluster. */
  size_t cluster = (size_t)1 << h->cluster_bits;
  if (len > cluster)
    len = cluster;
  size_t header_len = 72;
  if (h->version == 3) {
    if (len < 104)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: truncated");
    h->incompatible = be64(buf + 72);
    header_len = be32(buf + 100);
    if (header_len < 104 || header_len > len || header_len % 8)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: header length %zu is not valid",
                        header_len);
  }
  h->data_file = (h->incompatible & INCOMPAT_DATA_FILE) != 0;
  if (backing_off) {
    if (backing_len == 0 || backing_len > 1023 || backing_off > len ||
        backing_len > len - backing_off || backing_off < header_len)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: the backing file name lies outside "
                        "the first cluster or is longer than 1023 bytes");
    if (copy_name(buf + backing_off, backing_len, h->backing, sizeof h->backing,
                  "backing file name", e) < 0)
      return -1;
    h->has_backing = true;
  }
  /* Header extensions: type, length, data padded to 8 bytes; type 0 ends. */
  size_t off = header_len;
  for (int count = 0;; count++) {
    if (count > 1024 || off + 8 > len)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: extensions run past the first "
                        "cluster");
    uint32_t type = be32(buf + off), elen = be32(buf + off + 4);
    off += 8;
    if (type == EXT_END)
      break;
    if (elen > len - off)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: extension 0x%08x runs past the "
                        "first cluster", type);
    const unsigned char *data = buf + off;
    switch (type) {
    case EXT_BACKING_FORMAT:
      if (copy_name(data, elen, h->backing_format, sizeof h->backing_format,
                    "backing format", e) < 0)
        return -1;
      break;
    case EXT_DATA_FILE:
      h->data_file = true;
      if (copy_name(data, elen, h->data_file_name, sizeof h->data_file_name,
                    "data file name", e) < 0)
        return -1;
      break;
    case EXT_ENCRYPTION:
      h->encryption_header = true;
      break;
    default: /* feature names, bitmaps, unknown: nothing that leads outside */
      break;
    }
    size_t padded = ((size_t)elen + 7) & ~(size_t)7;
    if (padded > len - off)
      return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: extension 0x%08x runs past the "
                        "first cluster", type);
    off += padded;
  }
  if (h->has_backing && backing_off < off)
    return sp_err_set(e, SP_EXIT_FAILED, "qcow2 header: the backing file name overlaps the "
                      "header extensions");
  return 0;
}

int sp_qcow2_header_check(const struct sp_qcow2_header *h, const char *name,
                          const char *want_backing, struct sp_err *e)
{
  if (h->data_file)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: its qcow2 header names an external data file%s%s"
                      "%s: refusing it (an image of a point holds its data itself; a data file "
                      "could be any file or device of the host)", name,
                      h->data_file_name[0] ? " (" : "", h->data_file_name,
                      h->data_file_name[0] ? ")" : "");
  if (h->crypt_method || h->encryption_header)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: an encrypted qcow2 image: refusing it "
                      "(stillpoint never writes one)", name);
  if (h->incompatible & INCOMPAT_CORRUPT)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: its qcow2 header marks it corrupt", name);
  if (h->incompatible & ~(uint64_t)KNOWN_INCOMPAT)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: its qcow2 header asks for features stillpoint "
                      "does not know (incompatible bits 0x%llx): refusing it", name,
                      (unsigned long long)(h->incompatible & ~(uint64_t)KNOWN_INCOMPAT));
  if (!want_backing && h->has_backing)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: a full image, yet its header names a backing "
                      "file (%s): refusing it", name, h->backing);
  if (want_backing && (!h->has_backing || strcmp(h->backing, want_backing) != 0))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: its backing file is %s, but the manifest says "
                      "%s: refusing it", name, h->has_backing ? h->backing : "(none)",
                      want_backing);
  if (h->has_backing && h->backing_format[0] && strcmp(h->backing_format, "qcow2") != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: its backing file is said to be %s, not qcow2: "
                      "refusing it", name, h->backing_format);
  return 0;
}

int sp_image_check_fd(int fd, const char *name, const char *format, const char *want_backing,
                      uint64_t *vsize, struct sp_err *e)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot examine %s", name);
  if (!S_ISREG(st.st_mode))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s is not a regular file: refusing it", name);
  if (strcmp(format, "raw") == 0) {
    if (want_backing)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: a raw image cannot be an overlay of %s", name,
                        want_backing);
    if (vsize)
      *vsize = (uint64_t)st.st_size;
    return 0;
  }
  if (strcmp(format, "qcow2") != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: format %s is not one stillpoint writes", name,
                      format);
  size_t want = (size_t)1 << MAX_CLUSTER_BITS;
  if ((uint64_t)st.st_size < want)
    want = (size_t)st.st_size;
  _cleanup_free_ unsigned char *buf = sp_xmalloc(want ? want : 1);
  size_t got = 0;
  while (got < want) {
    ssize_t r = pread(fd, buf + got, want - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", name);
    if (r == 0)
      break;
    got += (size_t)r;
  }
  struct sp_qcow2_header h;
  if (sp_qcow2_header_parse(buf, got, &h, e) < 0) {
    e->code = SP_EXIT_PREFLIGHT;
    return sp_err_prefix(e, "%s", name);
  }
  if (sp_qcow2_header_check(&h, name, want_backing, e) < 0)
    return -1;
  if (vsize)
    *vsize = h.size;
  return 0;
}

/* Appends to a growing string; false on no memory. */
static bool add(char **s, size_t *len, const char *text)
{
  size_t n = strlen(text);
  char *ns = realloc(*s, *len + n + 1);
  if (!ns)
    return false;
  memcpy(ns + *len, text, n + 1);
  *s = ns;
  *len += n;
  return true;
}

char *sp_image_json(const struct sp_image_layer *layers, size_t n)
{
  char *s = NULL;
  size_t len = 0;
  bool ok = n > 0 && add(&s, &len, "json:");
  for (size_t i = 0; ok && i < n; i++) {
    const char *f = layers[i].format;
    if (!f || (strcmp(f, "qcow2") != 0 && strcmp(f, "raw") != 0) ||
        (strcmp(f, "raw") == 0 && i + 1 < n)) {
      ok = false;
      break;
    }
    char part[160];
    snprintf(part, sizeof part,
             "{\"driver\":\"%s\",\"file\":{\"driver\":\"file\",\"filename\":\"/proc/self/fd/%d\"}",
             f, layers[i].child_fd);
    ok = add(&s, &len, part);
    if (ok && strcmp(f, "qcow2") == 0)
      ok = add(&s, &len, i + 1 < n ? ",\"backing\":" : ",\"backing\":null");
  }
  for (size_t i = 0; ok && i < n; i++)
    ok = add(&s, &len, "}");
  if (!ok) {
    free(s);
    return NULL;
  }
  return s;
}
