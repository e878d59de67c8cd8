/* Where a domain's TPM and NVRAM state lives on the host, who owns it, and
 * whether this process may read it: the answers the preflight needs
 * before anything is paused. */
#ifndef SP_STATE_LOCATOR_H
#define SP_STATE_LOCATOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "domain_xml.h"
#include "err.h"
#include "state_files.h"

#define SP_SWTPM_ROOT "/var/lib/libvirt/swtpm"

struct sp_tpm_location {
  char *state_dir;  /* .../<uuid>/tpm2 (or tpm1.2), or the XML's source path */
  const char *subdir; /* "tpm2" | "tpm1.2" */
  struct sp_file_info dir;
  struct sp_file_info *files; /* regular files in state_dir, .lock left out */
  size_t nfiles;
  bool listable;    /* the directory can be read and searched */
};

/* "tpm2" for version 2.0, "tpm1.2" for 1.2, NULL for anything else. */
const char *sp_tpm_subdir(const char *version);

/* Fills the location of an emulator TPM; swtpm_root is SP_SWTPM_ROOT
 * except in tests. */
int sp_tpm_locate(const struct sp_domain *d, const char *swtpm_root,
                  struct sp_tpm_location *loc, struct sp_err *e);
/* The same on another host (host.h); sp_tpm_locate is this machine. */
struct sp_host;
int sp_host_tpm_locate(struct sp_host *h, const struct sp_domain *d, const char *swtpm_root,
                       struct sp_tpm_location *loc, struct sp_err *e);
void sp_tpm_location_free(struct sp_tpm_location *loc);

#endif
