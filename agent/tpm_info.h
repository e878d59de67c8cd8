/* What a TPM state holds, as inspect reports it: properties, NV indexes
 * (with their contents where an empty authorization may read them),
 * persistent objects, PCR banks, the clock.  tpm_query.h fills it from a
 * real swtpm; this part is the data and the pure decisions on it. */
#ifndef SP_TPM_INFO_H
#define SP_TPM_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sha256.h"

/* Contents of an NV index up to this size are read (an EK certificate is
 * about 1 KiB; ordinary indexes are smaller). */
#define TPM_INFO_NV_READ_MAX 4096

struct tpm_nv {
  uint32_t handle;
  uint32_t attributes;     /* TPMA_NV */
  uint16_t size;
  uint16_t name_alg;
  bool read;               /* data below is the index's content */
  uint8_t *data;
  size_t data_len;
  char sha256[SP_SHA256_HEX_LEN + 1]; /* of data, when read */
  uint32_t read_rc;        /* the TPM's answer when not read (0: not tried) */
};

struct tpm_object {
  uint32_t handle;
  uint16_t type;           /* TPM2_ALG_RSA, _ECC, _KEYEDHASH, _SYMCIPHER */
  uint16_t name_alg;
  uint32_t attributes;     /* TPMA_OBJECT */
  uint16_t bits;           /* RSA key bits, or 0 */
  uint16_t curve;          /* ECC curve id, or 0 */
  char *name;              /* hex of the TPM name: changes when the key does */
};

struct tpm_bank {
  uint16_t alg;
  unsigned pcrs;           /* PCRs allocated in the bank */
};

struct tpm_info {
  char *version;           /* "2.0" | "1.2" */
  bool queried;            /* false: only loaded (TPM 1.2), see note */
  char *note;
  char manufacturer[5];
  char vendor[17];
  uint32_t firmware1, firmware2;
  uint32_t spec_level, spec_revision, spec_year, spec_day;
  uint32_t permanent;      /* TPMA_PERMANENT */
  uint32_t lockout_counter, max_auth_fail;
  uint64_t clock;          /* ms the TPM has run, as saved in the state */
  uint32_t reset_count, restart_count;
  struct tpm_nv *nv;
  size_t nnv;
  struct tpm_object *objects; /* persistent handles */
  size_t nobjects;
  struct tpm_bank *banks;
  size_t nbanks;
};

void tpm_info_free(struct tpm_info *ti);

/* TPMA_NV_WRITTEN: the index was written at least once. */
#define TPM_INFO_NV_WRITTEN 0x20000000u

/* A counter index's value (TPM integers are big endian), when read. */
bool tpm_nv_counter(const struct tpm_nv *nv, uint64_t *value);

/* The TCG provisioning guidance's persistent handle ranges: "storage"
 * (0x81000000-0x8100FFFF: the SRK at 0x81000001), "endorsement" (EKs,
 * 0x8101xxxx: swtpm_setup's EK at 0x81010001), "platform" (0x818xxxxx+). */
const char *tpm_handle_range(uint32_t handle);

/* Whether an OS ever took the TPM into use, with the reasons in buf:
 * an owner, endorsement or lockout authorization was set, or a storage
 * key was made persistent (Windows and systemd put the storage root key
 * at 0x81000001).  What swtpm_setup makes (EKs, their certificates) does
 * not count. */
bool tpm_info_provisioned(const struct tpm_info *ti, char *buf, size_t size);

/* Names for display: "sha256", "rsa", "nist-p256"; "counter", "ordinary". */
const char *tpm_alg_name(uint16_t alg);
const char *tpm_curve_name(uint16_t curve);
const char *tpm_nv_type_name(uint32_t attributes);
/* "OWNERWRITE|AUTHREAD|NO_DA|WRITTEN" and the like. */
void tpm_nv_attr_text(uint32_t attributes, char *buf, size_t size);
void tpm_object_attr_text(uint32_t attributes, char *buf, size_t size);

#endif
