/* The hook's hard time bound: the action runs in a worker process; the
 * supervisor (the process libvirt waits for) forwards the worker's log
 * lines, and at the deadline kills it, logs that it was abandoned and
 * returns.  The worker never holds libvirt's pipes (stdin, stdout,
 * stderr), so a worker stuck in the kernel cannot hold libvirt either. */
#ifndef SP_HOOK_SUPERVISE_H
#define SP_HOOK_SUPERVISE_H

#include "hook.h"

/* Runs action(c) in a worker until deadline_ms (sp_now_ms clock).
 * Returns the hook's exit status: 1 only when the worker's last status
 * was HOOK_STATUS_BLOCK, else 0 (crash and time-out included). */
int hook_supervise(struct hook_call *c, void (*action)(struct hook_call *),
                   long long deadline_ms);

#endif
