/* stillpoint state restore: puts one of the hook's snapshots back as a
 * shut-off VM's TPM state and NVRAM (stillpoint-hook(8), RECOVERY). */
#ifndef SP_SNAPSHOT_RESTORE_H
#define SP_SNAPSHOT_RESTORE_H

#include "domain_xml.h"
#include "err.h"
#include "log.h"

struct snapshot_restore_args {
  const char *state_dir;
  const struct sp_domain *dom; /* parsed from the inactive XML; uuid checked */
  const char *id;              /* NULL: the newest snapshot */
  const struct sp_log *log;
};

struct snapshot_restore_result {
  char *id;          /* the snapshot put back */
  char *saved_as;    /* the state before, kept as this snapshot (NULL: already in the store) */
  char *tpm_dir;     /* where the TPM state went (NULL: none) */
  char *nvram_path;  /* where the NVRAM went (NULL: none) */
  bool unchanged;    /* the state already was the snapshot's: nothing written */
};

/* The caller has checked that the VM is not running. */
int snapshot_restore(const struct snapshot_restore_args *a, struct snapshot_restore_result *r,
                     struct sp_err *e);
void snapshot_restore_result_free(struct snapshot_restore_result *r);

#endif
