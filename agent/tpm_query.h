/* Reading a TPM state's tpm_info from the TPM itself: swtpm is started on
 * a private copy of the state (its .lock left out) and asked through the
 * TPM software stack, libtss2's Esys API over its swtpm TCTI - never with
 * hand-built command bytes.  The copy is thrown away afterwards, so reads
 * that fail authorization there cost the real TPM nothing, and swtpm is
 * stopped on every path. */
#ifndef SP_TPM_QUERY_H
#define SP_TPM_QUERY_H

#include "err.h"
#include "state_capture.h"
#include "tpm_info.h"

/* version: "2.0" (queried) or "1.2" (libtss2 speaks 2.0 only: the state is
 * only checked to load, and ti->note says so). */
int tpm_query(const struct sp_tree *tree, const char *version, struct tpm_info *ti,
              struct sp_err *e);

#endif
