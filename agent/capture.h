/* The state capture step of the window: NVRAM and TPM state read into
 * memory while the VM is paused, written out after it runs again. */
#ifndef SP_CAPTURE_H
#define SP_CAPTURE_H

#include <stdbool.h>

#include "err.h"
#include "host.h"
#include "preflight.h"
#include "state_capture.h"

struct captured {
  bool nvram, tpm;
  struct sp_blob nv;
  struct sp_tree tree;
  struct sp_capture_stats nv_stats, tpm_stats;
};

int capture_state(struct sp_host *h, const struct preflight *pf, struct captured *c,
                  struct sp_err *e);
void captured_free(struct captured *c);

#endif
