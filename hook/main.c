/* stillpoint-hook: the libvirt qemu hook (stillpoint-hook(8)).  libvirt
 * runs it as /etc/libvirt/hooks/qemu.d/stillpoint with DOMAIN OPERATION
 * SUB-OPERATION EXTRA and the domain XML on stdin, and waits for it with
 * no time limit of its own.  Hence: it never calls libvirt (libvirt holds
 * the domain's job: a deadlock), every action is bounded (HOOK_BUDGET_MS),
 * nothing is written on stdout (libvirt reads the hook's stdout as a new
 * domain XML for some operations), and it exits 0 except to refuse a
 * start by policy. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "build_config.h"
#include "clock.h"
#include "handoff.h"
#include "handoff_choice.h"
#include "err.h"
#include "hook.h"
#include "input.h"
#include "supervise.h"

static const char usage[] =
  "usage: stillpoint-hook DOMAIN OPERATION SUB-OPERATION EXTRA < domain.xml\n"
  "The libvirt qemu hook of stillpoint: libvirt runs it as\n"
  "/etc/libvirt/hooks/qemu.d/stillpoint (see `stillpoint hook install`).\n"
  "At 'release end' it snapshots TPM state and NVRAM; at 'prepare begin' it puts\n"
  "lost TPM state back. See stillpoint-hook(8).\n";

/* libvirt's XML for a domain is a few KiB; this leaves room for any. */
enum { XML_MAX = 16 << 20 };

static const struct {
  const char *op;
  void (*action)(struct hook_call *);
} actions[] = {
  { "prepare", hook_prepare },
  { "release", hook_release },
  { "migrate", hook_migrate },
};

/* The other operations of libvirt's qemu driver: nothing to do there. */
static const char *const other_ops[] = { "start", "started", "stopped", "reconnect", "attach",
                                         "restore", NULL };

static bool known(const char *op)
{
  for (const char *const *o = other_ops; *o; o++)
    if (strcmp(*o, op) == 0)
      return true;
  return false;
}

int main(int argc, char **argv)
{
  long long deadline = sp_now_ms() + HOOK_BUDGET_MS;
  /* A closed stderr must not kill us: a killed hook fails libvirt's call. */
  signal(SIGPIPE, SIG_IGN);
  if (argc == 2 && strcmp(argv[1], "--help") == 0) {
    fputs(usage, stdout);
    return SP_EXIT_OK;
  }
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    printf("stillpoint-hook %s\n", STILLPOINT_VERSION);
    return SP_EXIT_OK;
  }
  /* Six words: never libvirt's five (stillpoint-hook(8), BACKUP ON STOP). */
  if (argc == 6 && strcmp(argv[1], HOOK_HANDOFF_RUN_OPT) == 0)
    hook_exit(hook_handoff_run(argv[2], argv[3], argv[4], argv[5]));
  openlog("stillpoint-hook", LOG_PID, LOG_DAEMON);
  struct hook_call c = HOOK_CALL_INIT;
  c.log = (struct sp_log){ .prog = "stillpoint-hook", .to_syslog = true };
  struct sp_err e = { 0 };
  /* libvirt always gives a pipe; a person at a terminal gets no wait. */
  int in = isatty(STDIN_FILENO)
             ? sp_err_set(&e, SP_EXIT_USAGE, "stdin is a terminal, not libvirt's domain XML")
             : hook_read_input(STDIN_FILENO, XML_MAX, deadline, &c.xml, &c.xml_len, &e);
  void (*action)(struct hook_call *) = NULL;
  if (argc == 5) {
    c.domain = argv[1];
    c.op = argv[2];
    c.subop = argv[3];
    c.extra = argv[4];
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
      if (strcmp(c.op, actions[i].op) == 0)
        action = actions[i].action;
  }
  int rc = 0;
  if (argc != 5)
    sp_error(&c.log, "called with %d arguments, not libvirt's DOMAIN OPERATION SUB-OPERATION "
             "EXTRA: nothing done\n%s", argc - 1, usage);
  else if (!action && !known(c.op))
    sp_info(&c.log, "%s: operation '%s %s' is not one stillpoint-hook knows: nothing done",
            c.domain, c.op, c.subop);
  else if (action && in < 0)
    sp_error(&c.log, "%s: %s %s: nothing done: %s", c.domain, c.op, c.subop, e.msg);
  else if (action)
    rc = hook_supervise(&c, action, deadline);
  free(c.xml);
  closelog();
  hook_exit(rc);
}
