/* stillpoint-hook: what one call from libvirt carries, and the actions.
 * See stillpoint-hook(8) and docs/design.md, "The hook". */
#ifndef SP_HOOK_H
#define SP_HOOK_H

#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

/* Every action, stdin included, ends within this; past it the work is
 * abandoned with a log line and libvirt goes on (stillpoint-hook(8), RULES). */
#define HOOK_BUDGET_MS 2000

/* Status bytes the worker sends the supervisor.  BLOCK: the start must
 * be refused unless the worker later sends OK (policy
 * block_start_on_tpm_loss and a lost TPM not yet recovered). */
#define HOOK_STATUS_BLOCK 'B'
#define HOOK_STATUS_OK 'K'

struct hook_call {
  const char *domain;  /* argv[1] */
  const char *op;      /* prepare | release | ... */
  const char *subop;   /* begin | end | - */
  const char *extra;   /* "-", or the reason of release (libvirt >= 10.5) */
  char *xml;           /* the domain XML from stdin */
  size_t xml_len;
  struct sp_log log;
  int status_fd;       /* worker only: HOOK_STATUS_* go here */
};
#define HOOK_CALL_INIT { .status_fd = -1 }

/* Actions; run in the worker process.  They log what they did and never
 * fail: the exit status is the supervisor's decision. */
void hook_prepare(struct hook_call *c);
void hook_release(struct hook_call *c);
void hook_migrate(struct hook_call *c);

/* Tells the supervisor a HOOK_STATUS_* byte. */
void hook_status(const struct hook_call *c, char status);

/* Ends the process without running the libraries' destructors (libxml2,
 * ICU, libstdc++, OpenSSL: ~1.5 ms here, in every hook call libvirt waits
 * for).  Nothing of ours needs them: stderr is unbuffered and every file
 * written is fsynced.  Sanitizer builds exit normally, so LeakSanitizer
 * still checks. */
static inline _Noreturn void hook_exit(int code)
{
#ifdef __SANITIZE_ADDRESS__
  exit(code);
#else
  _exit(code);
#endif
}

#endif
