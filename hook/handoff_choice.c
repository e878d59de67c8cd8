#include "handoff_choice.h"

#include <stdio.h>
#include <string.h>

enum hook_handoff hook_handoff_choose(bool systemd_booted, bool systemd_run_executable)
{
  return systemd_booted && systemd_run_executable ? HOOK_HANDOFF_SYSTEMD_RUN
                                                  : HOOK_HANDOFF_DOUBLE_FORK;
}

const char *hook_handoff_name(enum hook_handoff h)
{
  return h == HOOK_HANDOFF_SYSTEMD_RUN ? "systemd-run" : "a double fork";
}

/* A libvirt UUID in its one text form: 36 characters, dashes at 8 13 18 23. */
static bool uuid_text(const char *u)
{
  if (!u || strlen(u) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !strchr("0123456789abcdefABCDEF", u[i]))
      return false;
  }
  return true;
}

int hook_handoff_systemd_argv(struct hook_handoff_argv *a, const char *hook_bin, const char *bin,
                              const char *domain, const char *uuid, long hook_pid,
                              const char *confdir)
{
  memset(a, 0, sizeof *a);
  size_t n = 0;
  int u = snprintf(a->unit, sizeof a->unit, "--unit=stillpoint-backup-on-stop-%s", uuid);
  int p = snprintf(a->pid, sizeof a->pid, "%ld", hook_pid);
  int s = confdir ? snprintf(a->setenv, sizeof a->setenv, "--setenv=STILLPOINT_CONFDIR=%s",
                             confdir)
                  : 0;
  if (!uuid_text(uuid) || !hook_bin || !bin || !domain || hook_pid <= 0 || u < 0 ||
      (size_t)u >= sizeof a->unit || p < 0 || (size_t)p >= sizeof a->pid || s < 0 ||
      (size_t)s >= sizeof a->setenv)
    return -1;
  a->argv[n++] = HOOK_SYSTEMD_RUN;
  a->argv[n++] = a->unit;
  a->argv[n++] = "--collect";
  a->argv[n++] = "--quiet";
  if (confdir)
    a->argv[n++] = a->setenv;
  a->argv[n++] = "--";
  a->argv[n++] = hook_bin;
  a->argv[n++] = HOOK_HANDOFF_RUN_OPT;
  a->argv[n++] = bin;
  a->argv[n++] = domain;
  a->argv[n++] = uuid;
  a->argv[n++] = a->pid;
  a->argv[n] = NULL;
  return 0;
}
