/* An offline point: a shut-off VM started paused for its backup job and
 * stopped again (docs/design.md, "Offline points").  Its vCPUs never run,
 * so nothing is frozen or suspended; NVRAM and TPM state are read before
 * the start and must read the same inside the window. */
#ifndef SP_OFFLINE_H
#define SP_OFFLINE_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "capture.h"
#include "err.h"
#include "guardian.h"
#include "host.h"
#include "log.h"

struct offline {
  bool started;        /* we started it (paused); we stop it */
  bool marked;         /* the hook's mark is set (offline_mark.h) */
  bool left_running;   /* someone resumed it meanwhile: it stays running */
  char *mark;          /* the mark's path on the hypervisor */
  struct sp_host *host;
};

/* Sets the hook's mark, tells the guardian, starts the VM paused and
 * titles it (`virsh list --title` says what is going on). */
int offline_start(virDomainPtr dom, struct sp_host *h, const char *uuid, struct guardian *g,
                  struct offline *o, struct sp_err *e);
/* Whether the state read before the start (before) is the one read in the
 * window (after); *why says what differs. */
int offline_same_state(const struct captured *before, const struct captured *after,
                       struct sp_err *e);
/* Ends what offline_start began: destroys a VM still paused; one that
 * someone resumed (`virsh resume` during the backup) is left running.
 * Removes the mark.  Safe to call when nothing was started. */
void offline_stop(virDomainPtr dom, struct guardian *g, struct offline *o,
                  const struct sp_log *log);

#endif
