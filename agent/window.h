/* The pause window: virDomainSuspend .. virDomainResume, only when the VM
 * was running.  Timestamps on both clocks: monotonic for pause_ms, UTC
 * for the manifest. */
#ifndef SP_WINDOW_H
#define SP_WINDOW_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "err.h"
#include "guardian.h"

struct window {
  bool we_paused;        /* we suspended it, so we resume it */
  bool was_paused;       /* it was paused before: still one instant */
  bool open;             /* between a successful suspend and the resume */
  bool held;             /* pause = off on a running VM: its freeze is the window */
  long long t_open, t_close; /* monotonic ms */
  char paused_at[32], resumed_at[32];
};

/* Pauses a running VM (telling the guardian first); a VM that was paused
 * already is left as it is and the window only marks the instant. */
int window_open(virDomainPtr dom, struct guardian *g, bool pause, struct window *w,
                struct sp_err *e);
/* Resumes what window_open paused.  Fails when the guardian had to resume
 * the VM before us (the window overran: the point is not one instant), or
 * with pause = off to thaw it (the point may not be file-system
 * consistent). */
int window_close(virDomainPtr dom, struct guardian *g, struct window *w, struct sp_err *e);
double window_ms(const struct window *w);

#endif
