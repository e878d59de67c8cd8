/* EFI signature lists: the data of the Secure Boot variables PK, KEK, db
 * and dbx (UEFI 2.10, 32.4.1 EFI_SIGNATURE_LIST): a sequence of lists,
 * each a type GUID, its sizes, and same-size entries of an owner GUID and
 * a signature (an X.509 certificate in DER, or a hash).  Certificates are
 * read with OpenSSL for their subject; every entry carries the SHA-256 of
 * its signature data so two lists can be compared entry by entry. */
#ifndef SP_EFI_SIGLIST_H
#define SP_EFI_SIGLIST_H

#include <efivar/efivar.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sha256.h"

enum efi_sig_kind {
  EFI_SIG_X509,      /* a certificate */
  EFI_SIG_HASH,      /* SHA-1/224/256/384/512 of an image */
  EFI_SIG_CERT_HASH, /* X509_SHA256/384/512: a hash of a certificate's TBS (dbx) */
  EFI_SIG_OTHER,     /* RSA2048 keys and types we do not know */
};

struct efi_sig {
  enum efi_sig_kind kind;
  const char *type;       /* "x509", "sha256", "x509-sha256", ... or the type GUID */
  efi_guid_t owner;
  char *subject;          /* X.509: the subject (RFC 2253), NULL otherwise or unreadable */
  char *not_after;        /* X.509: end of validity, "2026-01-31T00:00:00Z" */
  char sha256[SP_SHA256_HEX_LEN + 1]; /* of the signature data */
  size_t size;            /* bytes of signature data */
};

struct efi_siglist {
  struct efi_sig *sigs;
  size_t n;
  size_t certificates;    /* kind X509 */
  size_t hashes;          /* kinds HASH and CERT_HASH */
  char *unreadable;       /* the first certificate OpenSSL refused, NULL if none */
};

/* Parses the data of a signature database variable.  An empty variable is
 * an empty list.  Malformed lists are an error naming the offset. */
int efi_siglist_parse(const uint8_t *data, size_t len, struct efi_siglist *l, struct sp_err *e);
void efi_siglist_free(struct efi_siglist *l);

/* Whether l holds an entry with the same type and signature data as s. */
bool efi_siglist_has(const struct efi_siglist *l, const struct efi_sig *s);

#endif
