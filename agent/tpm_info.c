#include "tpm_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_tpm2_types.h>

struct bit_name {
  uint32_t bit;
  const char *name;
};

static void bits_text(uint32_t v, const struct bit_name *names, size_t n, char *buf,
                      size_t size)
{
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && o < size; i++) {
    if (!(v & names[i].bit))
      continue;
    int k = snprintf(buf + o, size - o, "%s%s", o ? "|" : "", names[i].name);
    if (k < 0)
      return;
    o += (size_t)k;
  }
}

void tpm_nv_attr_text(uint32_t a, char *buf, size_t size)
{
  static const struct bit_name names[] = {
    { TPMA_NV_PPWRITE, "PPWRITE" },       { TPMA_NV_OWNERWRITE, "OWNERWRITE" },
    { TPMA_NV_AUTHWRITE, "AUTHWRITE" },   { TPMA_NV_POLICYWRITE, "POLICYWRITE" },
    { TPMA_NV_POLICY_DELETE, "POLICY_DELETE" }, { TPMA_NV_WRITELOCKED, "WRITELOCKED" },
    { TPMA_NV_WRITEALL, "WRITEALL" },     { TPMA_NV_WRITEDEFINE, "WRITEDEFINE" },
    { TPMA_NV_WRITE_STCLEAR, "WRITE_STCLEAR" }, { TPMA_NV_GLOBALLOCK, "GLOBALLOCK" },
    { TPMA_NV_PPREAD, "PPREAD" },         { TPMA_NV_OWNERREAD, "OWNERREAD" },
    { TPMA_NV_AUTHREAD, "AUTHREAD" },     { TPMA_NV_POLICYREAD, "POLICYREAD" },
    { TPMA_NV_NO_DA, "NO_DA" },           { TPMA_NV_ORDERLY, "ORDERLY" },
    { TPMA_NV_CLEAR_STCLEAR, "CLEAR_STCLEAR" }, { TPMA_NV_READLOCKED, "READLOCKED" },
    { TPMA_NV_WRITTEN, "WRITTEN" },       { TPMA_NV_PLATFORMCREATE, "PLATFORMCREATE" },
    { TPMA_NV_READ_STCLEAR, "READ_STCLEAR" },
  };
  bits_text(a, names, sizeof names / sizeof names[0], buf, size);
}

void tpm_object_attr_text(uint32_t a, char *buf, size_t size)
{
  static const struct bit_name names[] = {
    { TPMA_OBJECT_FIXEDTPM, "fixedtpm" },
    { TPMA_OBJECT_STCLEAR, "stclear" },
    { TPMA_OBJECT_FIXEDPARENT, "fixedparent" },
    { TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitivedataorigin" },
    { TPMA_OBJECT_USERWITHAUTH, "userwithauth" },
    { TPMA_OBJECT_ADMINWITHPOLICY, "adminwithpolicy" },
    { TPMA_OBJECT_NODA, "noda" },
    { TPMA_OBJECT_ENCRYPTEDDUPLICATION, "encryptedduplication" },
    { TPMA_OBJECT_RESTRICTED, "restricted" },
    { TPMA_OBJECT_DECRYPT, "decrypt" },
    { TPMA_OBJECT_SIGN_ENCRYPT, "sign" },
    { TPMA_OBJECT_X509SIGN, "x509sign" },
  };
  bits_text(a, names, sizeof names / sizeof names[0], buf, size);
}

const char *tpm_nv_type_name(uint32_t a)
{
  switch ((a & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT) {
  case TPM2_NT_ORDINARY: return "ordinary";
  case TPM2_NT_COUNTER: return "counter";
  case TPM2_NT_BITS: return "bits";
  case TPM2_NT_EXTEND: return "extend";
  case TPM2_NT_PIN_FAIL: return "pin-fail";
  case TPM2_NT_PIN_PASS: return "pin-pass";
  default: return "unknown";
  }
}

const char *tpm_alg_name(uint16_t alg)
{
  switch (alg) {
  case TPM2_ALG_RSA: return "rsa";
  case TPM2_ALG_SHA1: return "sha1";
  case TPM2_ALG_HMAC: return "hmac";
  case TPM2_ALG_AES: return "aes";
  case TPM2_ALG_KEYEDHASH: return "keyedhash";
  case TPM2_ALG_SHA256: return "sha256";
  case TPM2_ALG_SHA384: return "sha384";
  case TPM2_ALG_SHA512: return "sha512";
  case TPM2_ALG_NULL: return "null";
  case TPM2_ALG_SM3_256: return "sm3_256";
  case TPM2_ALG_ECC: return "ecc";
  case TPM2_ALG_SYMCIPHER: return "symcipher";
  case TPM2_ALG_SHA3_256: return "sha3_256";
  case TPM2_ALG_SHA3_384: return "sha3_384";
  case TPM2_ALG_SHA3_512: return "sha3_512";
  default: return "unknown";
  }
}

const char *tpm_curve_name(uint16_t c)
{
  switch (c) {
  case TPM2_ECC_NIST_P192: return "nist-p192";
  case TPM2_ECC_NIST_P224: return "nist-p224";
  case TPM2_ECC_NIST_P256: return "nist-p256";
  case TPM2_ECC_NIST_P384: return "nist-p384";
  case TPM2_ECC_NIST_P521: return "nist-p521";
  case TPM2_ECC_BN_P256: return "bn-p256";
  case TPM2_ECC_BN_P638: return "bn-p638";
  case TPM2_ECC_SM2_P256: return "sm2-p256";
  default: return "unknown";
  }
}

const char *tpm_handle_range(uint32_t h)
{
  if (h >= 0x81000000 && h <= 0x8100FFFF)
    return "storage";
  if (h >= 0x81010000 && h <= 0x8101FFFF)
    return "endorsement";
  if (h >= 0x81800000 && h <= 0x81FFFFFF)
    return "platform";
  return "other";
}

bool tpm_nv_counter(const struct tpm_nv *nv, uint64_t *value)
{
  if (!nv->read || nv->data_len != 8 ||
      ((nv->attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT) != TPM2_NT_COUNTER)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++)
    v = v << 8 | nv->data[i];
  *value = v;
  return true;
}

/* Appends ", text" (or text first) to buf; truncates silently. */
static void reason(char *buf, size_t size, const char *text)
{
  size_t o = strlen(buf);
  snprintf(buf + o, size - o, "%s%s", o ? ", " : "", text);
}

bool tpm_info_provisioned(const struct tpm_info *ti, char *buf, size_t size)
{
  buf[0] = '\0';
  if (ti->permanent & TPMA_PERMANENT_OWNERAUTHSET)
    reason(buf, size, "owner authorization set");
  if (ti->permanent & TPMA_PERMANENT_ENDORSEMENTAUTHSET)
    reason(buf, size, "endorsement authorization set");
  if (ti->permanent & TPMA_PERMANENT_LOCKOUTAUTHSET)
    reason(buf, size, "lockout authorization set");
  size_t owned = 0;
  for (size_t i = 0; i < ti->nobjects; i++)
    if (strcmp(tpm_handle_range(ti->objects[i].handle), "storage") == 0)
      owned++;
  if (owned) {
    char text[64];
    snprintf(text, sizeof text, "%zu persistent storage key%s", owned, owned == 1 ? "" : "s");
    reason(buf, size, text);
  }
  return buf[0] != '\0';
}

void tpm_info_free(struct tpm_info *ti)
{
  free(ti->version);
  free(ti->note);
  for (size_t i = 0; i < ti->nnv; i++)
    free(ti->nv[i].data);
  free(ti->nv);
  for (size_t i = 0; i < ti->nobjects; i++)
    free(ti->objects[i].name);
  free(ti->objects);
  free(ti->banks);
  memset(ti, 0, sizeof *ti);
}
