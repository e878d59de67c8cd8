/* migrate begin (destination host only): mark the incoming migration for
 * the prepare that follows (incoming.h). */
#include "cleanup.h"
#include "context.h"
#include "hook.h"
#include "incoming.h"

void hook_migrate(struct hook_call *c)
{
  _cleanup_(hook_ctx_free) struct hook_ctx x = { 0 };
  struct sp_err e = { 0 };
  if (hook_ctx_load(c, &x, &e) < 0 || hook_incoming_set(&x, &e) < 0)
    sp_warn(&c->log, "%s: incoming migration not marked (the start may report its TPM state "
            "as lost): %s", c->domain, e.msg);
}
