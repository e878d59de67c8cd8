#include "context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_locator.h"
#include "uuid.h"

int hook_ctx_load(const struct hook_call *c, struct hook_ctx *x, struct sp_err *e)
{
  memset(x, 0, sizeof *x);
  if (!c->xml_len)
    return sp_err_set(e, SP_EXIT_FAILED, "no domain XML on stdin");
  if (sp_domain_parse(c->xml, c->xml_len, &x->dom, e) < 0)
    return sp_err_prefix(e, "the domain XML on stdin");
  if (!x->dom.name || strcmp(x->dom.name, c->domain) != 0)
    return sp_err_set(e, SP_EXIT_FAILED, "the domain XML on stdin is for '%s', not '%s'",
                      x->dom.name ? x->dom.name : "(no name)", c->domain);
  if (!sp_uuid_ok(x->dom.uuid))
    return sp_err_set(e, SP_EXIT_FAILED, "the domain XML on stdin has no usable UUID ('%s')",
                      x->dom.uuid ? x->dom.uuid : "");
  struct sp_config_args a = { .domain = c->domain };
  if (sp_config_load(&x->cfg, &a, e) < 0)
    return sp_err_prefix(e, "configuration");
  x->state_dir = sp_config_str(&x->cfg, SP_KEY_STATE_DIR);
  return 0;
}

void hook_ctx_free(struct hook_ctx *x)
{
  sp_domain_free(&x->dom);
  sp_config_free(&x->cfg);
}

char *hook_tpm_dir(const struct sp_domain *d)
{
  const char *sub = sp_tpm_subdir(d->tpm.version);
  if (d->tpm.backend != SP_TPM_EMULATOR || !sub)
    return NULL;
  if (d->tpm.source_path)
    return strdup(d->tpm.source_path);
  char *p = NULL;
  return asprintf(&p, "%s/%s/%s", SP_SWTPM_ROOT, d->uuid, sub) < 0 ? NULL : p;
}
