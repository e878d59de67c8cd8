/* What an action needs besides its arguments: the domain read from the
 * XML on stdin (never from libvirt: it waits for us) and the policy for
 * that domain. */
#ifndef SP_HOOK_CONTEXT_H
#define SP_HOOK_CONTEXT_H

#include "config.h"
#include "domain_xml.h"
#include "hook.h"

struct hook_ctx {
  struct sp_domain dom;  /* uuid checked with sp_uuid_ok */
  struct sp_config cfg;
  const char *state_dir; /* [hook] state_dir */
};

/* Parses the XML, checks that it is the named domain with a usable UUID,
 * and loads stillpoint.conf and vm.d/<domain>.conf. */
int hook_ctx_load(const struct hook_call *c, struct hook_ctx *x, struct sp_err *e);
void hook_ctx_free(struct hook_ctx *x);

/* The TPM state directory of an emulated TPM (malloc'd), NULL if none.
 * Computed like sp_tpm_locate, without its stat, listing and user name
 * lookups: the hook only needs the path, and prepare must stay fast. */
char *hook_tpm_dir(const struct sp_domain *d);

#endif
