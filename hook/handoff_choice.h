/* backup_on_stop's hand-off, the pure part: which way the detached
 * backup leaves the hook, and the systemd-run command line
 * (stillpoint-hook(8), BACKUP ON STOP).  No I/O here: handoff.c probes the
 * host and runs what this decides. */
#ifndef SP_HOOK_HANDOFF_CHOICE_H
#define SP_HOOK_HANDOFF_CHOICE_H

#include <stdbool.h>
#include <stddef.h>

/* Where systemd-run is looked for (libvirt runs hooks with a bare PATH). */
#define HOOK_SYSTEMD_RUN "/usr/bin/systemd-run"
/* systemd runs when this is a directory: sd_booted()'s own test. */
#define HOOK_SYSTEMD_DIR "/run/systemd/system"
/* The hook's own option for the detached run; argv: BIN DOMAIN UUID HOOK_PID. */
#define HOOK_HANDOFF_RUN_OPT "--backup-on-stop"

enum hook_handoff {
  HOOK_HANDOFF_DOUBLE_FORK, /* fork, setsid, fork: works on any host */
  HOOK_HANDOFF_SYSTEMD_RUN, /* a transient unit: its own cgroup and the journal */
};

/* systemd-run when systemd runs (systemd_booted: HOOK_SYSTEMD_DIR is a
 * directory) and systemd-run can be executed; the double fork otherwise.
 * A process forked from the hook would live in libvirtd's cgroup (or the
 * VM's), which systemd may stop with it: hence the unit where one can be. */
enum hook_handoff hook_handoff_choose(bool systemd_booted, bool systemd_run_executable);

/* Words for log lines: "systemd-run" or "a double fork". */
const char *hook_handoff_name(enum hook_handoff h);

/* The systemd-run command line, an argv (never a shell string):
 *   systemd-run --unit=stillpoint-backup-on-stop-UUID --collect --quiet
 *     [--setenv=STILLPOINT_CONFDIR=DIR] -- HOOK_BIN --backup-on-stop BIN DOMAIN UUID PID
 * The unit name is per VM, so systemd itself refuses a second pending
 * run.  confdir may be NULL (the default configuration).  The strings live
 * in *a; a->argv ends with NULL.  Returns 0, or -1 when a value does not
 * fit or the uuid is not one (unit names allow [0-9a-f-] from it). */
struct hook_handoff_argv {
  char unit[80];
  char pid[24];
  char setenv[4200];
  const char *argv[16];
};
int hook_handoff_systemd_argv(struct hook_handoff_argv *a, const char *hook_bin, const char *bin,
                              const char *domain, const char *uuid, long hook_pid,
                              const char *confdir);

#endif
