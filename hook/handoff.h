/* backup_on_stop: at 'release end' the hook hands `stillpoint backup
 * --only-offline DOMAIN` to a detached process and returns at once; it
 * never calls libvirt itself (stillpoint-hook(8), BACKUP ON STOP). */
#ifndef SP_HOOK_HANDOFF_H
#define SP_HOOK_HANDOFF_H

#include "context.h"
#include "hook.h"

/* Seconds the detached process waits after the hook has returned, so
 * that libvirt has released the domain and a start that follows the stop
 * at once comes first (the backup then refuses a running VM). */
#define HOOK_HANDOFF_SETTLE_S 2

/* Hands the backup off: through systemd-run when systemd runs, a double
 * fork otherwise (handoff_choice.h); logs which. */
void hook_backup_on_stop(const struct hook_call *c, const struct hook_ctx *x);

/* `stillpoint-hook --backup-on-stop BIN DOMAIN UUID HOOK_PID`: the command
 * of the systemd-run unit.  Takes the VM's pending lock (exit 3 when a run
 * holds it), waits for the hook to be gone, runs the backup; returns only
 * on bad arguments (exit 2) or a refusal. */
int hook_handoff_run(const char *bin, const char *domain, const char *uuid, const char *pid_text);

#endif
