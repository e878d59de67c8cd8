#include "window.h"

#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "clock.h"
#include "virt.h"

int window_open(virDomainPtr dom, struct guardian *g, bool pause, struct window *w,
                struct sp_err *e)
{
  const char *name = virDomainGetName(dom);
  int state = 0, reason;
  if (virDomainGetState(dom, &state, &reason, 0) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot read the state of %s: %s",
                      name, virt_errmsg());
  w->we_paused = pause && state == VIR_DOMAIN_RUNNING;
  w->held = !pause && state == VIR_DOMAIN_RUNNING;
  w->was_paused = state == VIR_DOMAIN_PAUSED;
  if (w->we_paused) {
    /* Told before the call: if we die inside it, the guardian resumes. */
    guardian_tell_paused(g);
    if (virDomainSuspend(dom) < 0) {
      guardian_tell_resumed(g);
      w->we_paused = false;
      return sp_err_set(e, SP_EXIT_FAILED, "cannot pause %s: %s", name,
                        virt_errmsg());
    }
  }
  w->open = true;
  w->t_open = sp_now_ms();
  sp_utc_now(w->paused_at);
  return 0;
}

int window_close(virDomainPtr dom, struct guardian *g, struct window *w, struct sp_err *e)
{
  if (!w->open)
    return 0;
  const char *name = virDomainGetName(dom);
  w->open = false;
  bool overran = guardian_overran(g, 0);
  int rc = 0;
  if (w->we_paused && !overran) {
    if (virDomainResume(dom) < 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", virt_errmsg());
      /* Running already: the guardian beat us to it on the deadline. */
      int state = 0, reason;
      if (virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_RUNNING)
        overran = guardian_overran(g, 2000);
      if (!overran)
        rc = sp_err_set(e, SP_EXIT_FAILED, "cannot resume %s: %s (the guardian will try again)",
                        name, msg);
    } else {
      guardian_tell_resumed(g);
    }
  }
  w->t_close = sp_now_ms();
  sp_utc_now(w->resumed_at);
  if (rc == 0 && (overran || guardian_overran(g, 0)))
    rc = w->held ? sp_err_set(e, SP_EXIT_FAILED, "the freeze overran pause_max_ms (pause = off) "
                              "and the guardian thawed %s early: the point would not be "
                              "file-system consistent (a very busy host? raise pause_max_ms)",
                              name)
                 : sp_err_set(e, SP_EXIT_FAILED, "the pause overran pause_max_ms and the "
                              "guardian resumed %s early: the point would not be one instant "
                              "(a very busy host? raise pause_max_ms)", name);
  return rc;
}

double window_ms(const struct window *w)
{
  return (double)(w->t_close - w->t_open);
}
