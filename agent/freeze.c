#include "freeze.h"

#include <libvirt/libvirt-qemu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "state_capture.h"
#include "virt.h"
#include "window.h"

/* "a, b" -> { "a", "b" } in place. */
static size_t split_mountpoints(char *s, const char **out, size_t max)
{
  size_t n = 0;
  for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) {
    while (*tok == ' ')
      tok++;
    char *end = tok + strlen(tok);
    while (end > tok && end[-1] == ' ')
      *--end = '\0';
    if (*tok)
      out[n++] = tok;
  }
  return n;
}

/* guest-fsfreeze-status: someone else's freeze must not be thawed by us. */
static bool already_frozen(virDomainPtr dom, int timeout_s)
{
  _cleanup_free_ char *reply =
    virDomainQemuAgentCommand(dom, "{\"execute\":\"guest-fsfreeze-status\"}", timeout_s, 0);
  return reply && strstr(reply, "\"frozen\"");
}

int freeze_guest(virDomainPtr dom, const struct sp_config *cfg, const struct preflight *pf,
                 struct guardian *g, struct freeze *f, const struct sp_log *log,
                 struct sp_err *e)
{
  memset(f, 0, sizeof *f);
  if (sp_config_is(cfg, SP_KEY_FREEZE, "off")) {
    snprintf(f->note, sizeof f->note, "freeze = off");
    return 0;
  }
  bool required = sp_config_is(cfg, SP_KEY_FREEZE, "required");
  const char *name = pf->dom.name;
  if (!pf->dom.agent_connected) {
    /* preflight refused this case for freeze = required */
    snprintf(f->note, sizeof f->note, "no guest agent answering: file systems not frozen");
    return 0;
  }
  int timeout = (int)sp_config_int(cfg, SP_KEY_FREEZE_TIMEOUT_S);
  if (virDomainAgentSetResponseTimeout(dom, timeout, 0) < 0)
    sp_warn(log, "cannot bound the guest agent's answer time: %s", virt_errmsg());
  if (already_frozen(dom, timeout)) {
    snprintf(f->note, sizeof f->note, "the guest was already frozen by someone else: not frozen "
             "nor thawed by stillpoint");
    sp_warn(log, "%s", f->note);
    return 0;
  }
  _cleanup_free_ char *mp = strdup(sp_config_str(cfg, SP_KEY_FREEZE_MOUNTPOINTS));
  const char *mounts[64];
  size_t nm = mp ? split_mountpoints(mp, mounts, 64) : 0;

  f->t_freeze = sp_now_ms();
  utc_now(f->freeze_at);
  /* Told first: if we die while the agent freezes, the guardian thaws. */
  guardian_tell_frozen(g);
  int n = virDomainFSFreeze(dom, nm ? mounts : NULL, (unsigned)nm, 0);
  if (n < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", virt_errmsg());
    /* A freeze that failed half way may have frozen some: thaw to be sure. */
    virDomainFSThaw(dom, NULL, 0, 0);
    guardian_tell_thawed(g);
    virDomainAgentSetResponseTimeout(dom, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT, 0);
    if (required)
      return sp_err_set(e, SP_EXIT_FAILED, "the guest agent could not freeze the file systems "
                        "of %s (freeze = required): %s", name, msg);
    snprintf(f->note, sizeof f->note, "freeze failed, point taken unfrozen: %s", msg);
    sp_warn(log, "%s", f->note);
    return 0;
  }
  f->frozen = true;
  f->count = n;
  return 0;
}

int thaw_guest(virDomainPtr dom, struct guardian *g, struct freeze *f, const struct sp_log *log,
               struct sp_err *e)
{
  if (!f->frozen)
    return 0;
  const char *name = virDomainGetName(dom);
  int n = -1;
  for (int i = 0; i < 25 && n < 0; i++) {
    n = virDomainFSThaw(dom, NULL, 0, 0);
    if (n < 0) {
      sp_warn(log, "thaw of %s failed, retrying: %s", name, virt_errmsg());
      usleep(200 * 1000);
    }
  }
  f->t_thaw = sp_now_ms();
  utc_now(f->thaw_at);
  if (n < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot thaw the file systems of %s: %s; thaw them "
                      "with `virsh domfsthaw %s`", name, virt_errmsg(), name);
  f->frozen = false;
  f->thawed = n;
  guardian_tell_thawed(g);
  virDomainAgentSetResponseTimeout(dom, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT, 0);
  if (n != f->count)
    snprintf(f->note, sizeof f->note, "thawed %d file systems but froze %d", n, f->count);
  return 0;
}

double freeze_ms(const struct freeze *f)
{
  return f->t_thaw > f->t_freeze ? (double)(f->t_thaw - f->t_freeze) : 0.0;
}
