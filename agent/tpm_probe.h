/* Whether a TPM state tree is one swtpm can load: swtpm is started on a
 * private copy, told to start up, and asked for random bytes. */
#ifndef SP_TPM_PROBE_H
#define SP_TPM_PROBE_H

#include "err.h"
#include "state_capture.h"

/* version: "2.0" or "1.2".  0 when swtpm answered the command; -1 with
 * the reason otherwise. */
int tpm_probe(const struct sp_tree *t, const char *version, struct sp_err *e);

#endif
