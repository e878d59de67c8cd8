/* What differs between two inspected states: a point (the subject) and a
 * reference (another point, or a VM's current NVRAM and TPM).  Each
 * difference is told once, from the subject's side: "added" is in the
 * subject only, "missing" in the reference only, "changed" in both but
 * not alike.  Counters of use (the TPM's clock and boot counts, the
 * store's free space) are not differences. */
#ifndef SP_INSPECT_DIFF_H
#define SP_INSPECT_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "nvram_info.h"
#include "tpm_info.h"

struct inspect_change {
  const char *area;   /* "nvram" | "tpm" */
  char *item;         /* "db", "SpLoop-5b2a...", "nv 0x01500010", "key 0x81000001" */
  const char *change; /* "added" | "missing" | "changed" */
  char *text;         /* one line for people: "db differs: 1 certificate added (CN=...)" */
};

struct inspect_diff {
  struct inspect_change *v;
  size_t n;
};

/* Either side of a pair may be NULL (not captured there); that is itself
 * a difference when the other side has it. */
int inspect_diff_nvram(const struct nvram_info *subject, const struct nvram_info *reference,
                       struct inspect_diff *d, struct sp_err *e);
int inspect_diff_tpm(const struct tpm_info *subject, const struct tpm_info *reference,
                     struct inspect_diff *d, struct sp_err *e);
void inspect_diff_free(struct inspect_diff *d);

/* A small value for people: hex bytes, and the little-endian number for
 * 1, 2, 4 and 8 bytes (how firmware and tools store counters); "N bytes"
 * above 16. */
void inspect_value_text(const uint8_t *p, size_t n, char *buf, size_t size);

#endif
