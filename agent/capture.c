#include "capture.h"

#include <string.h>

/* Bounds inside the pause: a healthy swtpm settles in one or two reads;
 * beyond these something is wrong and the window must not wait for it. */
enum { MAX_READS = 50, BUDGET_MS = 500 };

int capture_state(struct sp_host *h, const struct preflight *pf, struct captured *c,
                  struct sp_err *e)
{
  memset(c, 0, sizeof *c);
  if (pf->capture_nvram) {
    if (sp_host_blob_capture(h, pf->nvram.path, MAX_READS, BUDGET_MS, &c->nv, &c->nv_stats, e) < 0)
      return sp_err_prefix(e, "NVRAM capture");
    c->nvram = true;
  }
  if (pf->capture_tpm) {
    if (sp_host_tree_capture(h, pf->tpm.state_dir, MAX_READS, BUDGET_MS, &c->tree, &c->tpm_stats, e) < 0)
      return sp_err_prefix(e, "TPM capture");
    c->tpm = true;
  }
  return 0;
}

void captured_free(struct captured *c)
{
  sp_blob_free(&c->nv);
  sp_tree_free(&c->tree);
  memset(c, 0, sizeof *c);
}
