#include "efi_siglist.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "efi_varstore.h"
#include "xalloc.h"

enum { LIST_HEADER = 28, OWNER = 16 }; /* SignatureType(16) ListSize HeaderSize SignatureSize */

static const struct {
  const efi_guid_t *guid;
  enum efi_sig_kind kind;
  const char *name;
} types[] = {
  { &efi_guid_x509_cert, EFI_SIG_X509, "x509" },
  { &efi_guid_sha256, EFI_SIG_HASH, "sha256" },
  { &efi_guid_sha1, EFI_SIG_HASH, "sha1" },
  { &efi_guid_sha224, EFI_SIG_HASH, "sha224" },
  { &efi_guid_sha384, EFI_SIG_HASH, "sha384" },
  { &efi_guid_sha512, EFI_SIG_HASH, "sha512" },
  { &efi_guid_x509_sha256, EFI_SIG_CERT_HASH, "x509-sha256" },
  { &efi_guid_x509_sha384, EFI_SIG_CERT_HASH, "x509-sha384" },
  { &efi_guid_x509_sha512, EFI_SIG_CERT_HASH, "x509-sha512" },
  { &efi_guid_rsa2048, EFI_SIG_OTHER, "rsa2048" },
  { &efi_guid_rsa2048_sha256, EFI_SIG_OTHER, "rsa2048-sha256" },
  { &efi_guid_rsa2048_sha1, EFI_SIG_OTHER, "rsa2048-sha1" },
  { &efi_guid_pkcs7_cert, EFI_SIG_OTHER, "pkcs7" },
};

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void read_x509(struct efi_sig *s, const uint8_t *der, size_t len)
{
  const unsigned char *p = der;
  X509 *x = len <= LONG_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;
  if (!x)
    return;
  BIO *b = BIO_new(BIO_s_mem());
  if (b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
                              XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
    char *text;
    long n = BIO_get_mem_data(b, &text);
    if (n >= 0)
      s->subject = strndup(text, (size_t)n);
  }
  struct tm tm;
  const ASN1_TIME *na = X509_get0_notAfter(x);
  if (na && ASN1_TIME_to_tm(na, &tm) == 1) {
    char buf[32];
    if (strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
      s->not_after = strdup(buf);
  }
  BIO_free(b);
  X509_free(x);
}

static int add_sig(struct efi_siglist *l, size_t *cap, struct sp_err *e)
{
  if (l->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    l->sigs = sp_xreallocarray(l->sigs, nc, sizeof *l->sigs);
    *cap = nc;
  }
  memset(&l->sigs[l->n++], 0, sizeof l->sigs[0]);
  return 0;
}

/* One EFI_SIGNATURE_LIST at data[off]: its entries appended to l; *next
 * set to the offset after it. */
static int parse_list(const uint8_t *data, size_t len, size_t off, struct efi_siglist *l,
                      size_t *cap, size_t *next, struct sp_err *e)
{
  if (len - off < LIST_HEADER)
    return sp_err_set(e, SP_EXIT_FAILED, "signature list at offset %zu: truncated header", off);
  const uint8_t *h = data + off;
  size_t list_size = le32(h + 16), header_size = le32(h + 20), sig_size = le32(h + 24);
  if (list_size > len - off || list_size < LIST_HEADER ||
      header_size > list_size - LIST_HEADER)
    return sp_err_set(e, SP_EXIT_FAILED, "signature list at offset %zu: size %zu does not fit "
                      "(%zu bytes left)", off, list_size, len - off);
  size_t body = list_size - LIST_HEADER - header_size;
  if (sig_size < OWNER || body % sig_size != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "signature list at offset %zu: %zu bytes are not "
                      "whole entries of %zu bytes", off, body, sig_size);
  const char *type = NULL;
  enum efi_sig_kind kind = EFI_SIG_OTHER;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (memcmp(h, types[i].guid, sizeof(efi_guid_t)) == 0) {
      type = types[i].name;
      kind = types[i].kind;
    }
  const uint8_t *p = h + LIST_HEADER + header_size;
  for (size_t k = 0; k < body / sig_size; k++, p += sig_size) {
    if (add_sig(l, cap, e) < 0)
      return -1;
    struct efi_sig *s = &l->sigs[l->n - 1];
    s->kind = kind;
    s->type = type ? type : "unknown";
    memcpy(&s->owner, p, sizeof s->owner);
    s->size = sig_size - OWNER;
    sp_sha256_hex(p + OWNER, s->size, s->sha256);
    if (kind == EFI_SIG_X509) {
      l->certificates++;
      read_x509(s, p + OWNER, s->size);
      if (!s->subject && !l->unreadable &&
          asprintf(&l->unreadable, "certificate %zu (sha256 %.16s...)", l->n, s->sha256) < 0)
        l->unreadable = NULL;
    } else if (kind == EFI_SIG_HASH || kind == EFI_SIG_CERT_HASH) {
      l->hashes++;
    }
  }
  *next = off + list_size;
  return 0;
}

int efi_siglist_parse(const uint8_t *data, size_t len, struct efi_siglist *l, struct sp_err *e)
{
  memset(l, 0, sizeof *l);
  size_t off = 0, cap = 0;
  int rc = 0;
  while (rc == 0 && off < len)
    rc = parse_list(data, len, off, l, &cap, &off, e);
  if (rc < 0)
    efi_siglist_free(l);
  return rc;
}

void efi_siglist_free(struct efi_siglist *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->sigs[i].subject);
    free(l->sigs[i].not_after);
  }
  free(l->sigs);
  free(l->unreadable);
  memset(l, 0, sizeof *l);
}

bool efi_siglist_has(const struct efi_siglist *l, const struct efi_sig *s)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->sigs[i].type, s->type) == 0 && strcmp(l->sigs[i].sha256, s->sha256) == 0)
      return true;
  return false;
}
