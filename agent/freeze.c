#include "freeze.h"

#include <libvirt/virterror.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "test_knob.h"
#include "virt.h"

/* Thaw is retried for this many times freeze_timeout_s: long enough for a
 * slow freeze (FIFREEZE first writes back the dirty page cache) to finish
 * and let the thaw through, short enough that a dead agent does not hold
 * the backup for long. */
enum { THAW_BUDGET_FACTOR = 6, THAW_RETRY_MS = 200 };

/* "a, b" -> { "a", "b" } in place. */
static size_t split_mountpoints(char *s, const char **out, size_t max)
{
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(s, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
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

/* Appends to the manifest note, "; "-separated. */
static __attribute__((format(printf, 2, 3))) void note(struct freeze *f, const char *fmt, ...)
{
  size_t len = strlen(f->note);
  if (len && len + 2 < sizeof f->note) {
    strcpy(f->note + len, "; ");
    len += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->note + len, sizeof f->note - len, fmt, ap);
  va_end(ap);
}

/* The freeze got no answer within the bound: it may still happen, so it
 * is thawed as if it had (now for required, after the window for auto). */
static int freeze_unanswered(virDomainPtr dom, bool required, struct guardian *g,
                             struct freeze *f, const char *msg, const struct sp_log *log,
                             struct sp_err *e)
{
  const char *name = virDomainGetName(dom);
  f->frozen = true;
  f->uncertain = true;
  note(f, "the guest agent did not answer the freeze within %d s (%s)", f->timeout_s, msg);
  sp_warn(log, "the guest agent of %s did not answer the freeze within %d s (%s): it may "
          "still freeze, so stillpoint thaws it all the same", name, f->timeout_s, msg);
  if (!required) {
    note(f, "point taken unfrozen");
    return 0;
  }
  struct sp_err te = { 0 };
  if (thaw_guest(dom, g, f, log, &te) < 0)
    sp_error(log, "%s", te.msg);
  return sp_err_set(e, SP_EXIT_FAILED, "the guest agent of %s did not answer the freeze "
                    "within freeze_timeout_s = %d s (freeze = required): %s", name,
                    f->timeout_s, msg);
}

int freeze_guest(virDomainPtr dom, const struct sp_config *cfg, const struct preflight *pf,
                 struct guardian *g, struct freeze *f, const struct sp_log *log,
                 struct sp_err *e)
{
  memset(f, 0, sizeof *f);
  if (sp_config_is(cfg, SP_KEY_FREEZE, "off")) {
    note(f, "freeze = off");
    return 0;
  }
  /* No channel, no agent connected, an agent that did not answer, or a
   * paused VM: preflight refused these for freeze = required and put a
   * warning for auto in the manifest already. */
  if (!pf->dom.agent_connected || pf->state == VIR_DOMAIN_PAUSED ||
      (pf->agent != PF_AGENT_THAWED && pf->agent != PF_AGENT_FROZEN))
    return 0;
  bool required = sp_config_is(cfg, SP_KEY_FREEZE, "required");
  const char *name = pf->dom.name;
  f->timeout_s = (int)sp_config_int(cfg, SP_KEY_FREEZE_TIMEOUT_S);

  /* Asked again right before the freeze: someone may have frozen it since
   * preflight, and their freeze is theirs to thaw. */
  char why[400];
  enum pf_agent st = freeze_probe(dom, f->timeout_s, why, sizeof why);
  if (st == PF_AGENT_FROZEN) {
    note(f, "the guest was already frozen by someone else: not frozen nor thawed by stillpoint");
    sp_warn(log, "%s: %s", name, f->note);
    return 0;
  }
  if (st != PF_AGENT_THAWED) {
    if (required)
      return sp_err_set(e, SP_EXIT_FAILED, "the guest agent of %s stopped answering "
                        "guest-fsfreeze-status (freeze = required): %s", name, why);
    note(f, "the guest agent stopped answering (%s): point taken unfrozen", why);
    sp_warn(log, "%s: %s", name, f->note);
    return 0;
  }
  test_knob_sleep("STILLPOINT_TEST_FREEZE_DELAY_MS");

  _cleanup_free_ char *mp = strdup(sp_config_str(cfg, SP_KEY_FREEZE_MOUNTPOINTS));
  const char *mounts[64];
  size_t nm = mp ? split_mountpoints(mp, mounts, 64) : 0;

  freeze_agent_bound(dom, f->timeout_s, log);
  f->t_freeze = sp_now_ms();
  sp_utc_now(f->freeze_at);
  /* Told first: if we die while the agent freezes, the guardian thaws. */
  guardian_tell_frozen(g);
  int n = virDomainFSFreeze(dom, nm ? mounts : NULL, (unsigned)nm, 0);
  if (n < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", virt_errmsg());
    if (virt_errcode() == VIR_ERR_AGENT_UNRESPONSIVE)
      return freeze_unanswered(dom, required, g, f, msg, log, e);
    /* The agent answered with an error: qemu-ga thaws whatever it froze
     * before it answers, so there is nothing to thaw (and a thaw would
     * thaw a freeze of someone else who got in before us). */
    guardian_tell_thawed(g);
    freeze_agent_unbound(dom);
    f->freeze_at[0] = '\0';
    f->t_freeze = 0;
    if (required)
      return sp_err_set(e, SP_EXIT_FAILED, "the guest agent could not freeze the file systems "
                        "of %s (freeze = required): %s", name, msg);
    note(f, "freeze failed, point taken unfrozen: %s", msg);
    sp_warn(log, "%s: %s", name, f->note);
    return 0;
  }
  f->frozen = true;
  f->count = n;
  if (n == 0) {
    /* qemu-ga holds its frozen state (most commands refused) even with
     * nothing frozen: thawed all the same, after the window or now. */
    char which[300] = "";
    if (nm)
      snprintf(which, sizeof which, " (freeze_mountpoints = %s)",
               sp_config_str(cfg, SP_KEY_FREEZE_MOUNTPOINTS));
    note(f, "the guest agent froze no file system%s: point taken unfrozen", which);
    sp_warn(log, "%s: %s", name, f->note);
    if (required) {
      struct sp_err te = { 0 };
      if (thaw_guest(dom, g, f, log, &te) < 0)
        sp_error(log, "%s", te.msg);
      return sp_err_set(e, SP_EXIT_FAILED, "the guest agent of %s froze no file system "
                        "(freeze = required)%s", name,
                        nm ? ": check freeze_mountpoints" : "");
    }
    return 0;
  }
  test_knob_sleep("STILLPOINT_TEST_FROZEN_DELAY_MS");
  return 0;
}

int thaw_guest(virDomainPtr dom, struct guardian *g, struct freeze *f, const struct sp_log *log,
               struct sp_err *e)
{
  if (!f->frozen)
    return 0;
  const char *name = virDomainGetName(dom);
  long long deadline = sp_now_ms() + (long long)THAW_BUDGET_FACTOR * f->timeout_s * 1000;
  char msg[400] = "";
  int n;
  int tries = 0;
  while ((n = virDomainFSThaw(dom, NULL, 0, 0)) < 0) {
    snprintf(msg, sizeof msg, "%s", virt_errmsg());
    if (tries++ == 0)
      sp_warn(log, "thaw of %s failed, retrying for up to %d s: %s", name,
              THAW_BUDGET_FACTOR * f->timeout_s, msg);
    if (sp_now_ms() >= deadline)
      break;
    usleep(THAW_RETRY_MS * 1000);
  }
  f->t_thaw = sp_now_ms();
  sp_utc_now(f->thaw_at);
  freeze_agent_unbound(dom);
  if (n < 0) {
    /* The guardian still believes it frozen and tries once more at quit. */
    note(f, "THAW FAILED after %d s (%s): run `virsh domfsthaw %s`",
         THAW_BUDGET_FACTOR * f->timeout_s, msg, name);
    return sp_err_set(e, SP_EXIT_FAILED, "cannot thaw the file systems of %s within %d s: %s; "
                      "thaw them with `virsh domfsthaw %s`", name,
                      THAW_BUDGET_FACTOR * f->timeout_s, msg, name);
  }
  f->frozen = false;
  f->thawed = n;
  guardian_tell_thawed(g);
  if (f->uncertain) {
    sp_info(log, "thawed %d file system(s) of %s %.1f s after the unanswered freeze", n, name,
            (double)(f->t_thaw - f->t_freeze) / 1000.0);
    note(f, "the guest agent thawed %d file system(s) %.1f s after the freeze was sent", n,
         (double)(f->t_thaw - f->t_freeze) / 1000.0);
  } else if (n != f->count && guardian_overran(g, 0)) {
    /* pause = off: after the job began, so the point is not harmed. */
    note(f, "the guardian thawed the guest first: it stayed frozen past pause_max_ms");
    sp_warn(log, "%s: %s", name, f->note);
  } else if (n != f->count) {
    note(f, "thawed %d file system(s) but froze %d: someone else thawed or froze the guest "
         "meanwhile", n, f->count);
    sp_warn(log, "%s: thawed %d file system(s) but froze %d", name, n, f->count);
  }
  return 0;
}

double freeze_ms(const struct freeze *f)
{
  return f->t_thaw > f->t_freeze && f->t_freeze ? (double)(f->t_thaw - f->t_freeze) : 0.0;
}
