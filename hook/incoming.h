/* The mark an incoming migration leaves for the start that follows.
 * libvirt calls 'migrate begin' only on the destination host, before
 * 'prepare begin'; swtpm there receives the TPM state with the migration
 * and libvirt runs no swtpm_setup, so a missing state directory is
 * expected, not lost, and must not be "recovered" from an old snapshot. */
#ifndef SP_HOOK_INCOMING_H
#define SP_HOOK_INCOMING_H

#include <stdbool.h>

#include "context.h"

/* A mark older than this is left over from a migration that failed. */
#define HOOK_INCOMING_MAX_AGE_S 600

/* Leaves the mark, if the VM has a store (without one there is nothing
 * prepare would do). */
int hook_incoming_set(const struct hook_ctx *x, struct sp_err *e);
/* Removes the mark; true when it was there and fresh. */
bool hook_incoming_take(const struct hook_ctx *x);

#endif
