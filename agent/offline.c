#include "offline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "offline_mark.h"
#include "own_dirs.h"
#include "virt.h"

/* Shown by `virsh list --title` and `virsh desc --title` while the
 * backup holds the VM: a `virsh start` fails with "domain is already
 * running", and this says why and what to do. */
static const char title[] = "stillpoint: offline backup running; `virsh resume` runs the VM now "
                            "(the backup goes on), or wait for it to end";

int offline_start(virDomainPtr dom, struct sp_host *h, const char *uuid, struct guardian *g,
                  struct offline *o, struct sp_err *e)
{
  const char *name = virDomainGetName(dom);
  o->host = h;
  o->mark = sp_offline_mark_path(uuid);
  if (!o->mark)
    return sp_err_set(e, SP_EXIT_FAILED, "'%s' is not a UUID", uuid);
  char line[128];
  int len = snprintf(line, sizeof line, "offline backup of %s by pid %d\n", name, (int)getpid());
  if (sp_dirs_prepare(h, SP_OFFLINE_DIR, 0700, e) < 0 ||
      h->ops->write_file(h, o->mark, line, (size_t)len, 0600, 0, 0, e) < 0)
    return sp_err_prefix(e, "cannot mark the offline backup of %s for the hook", name);
  o->marked = true;
  /* Told before the call: a coordinator killed inside it still gets the
   * VM destroyed by the guardian. */
  guardian_tell_started(g);
  if (virDomainCreateWithFlags(dom, VIR_DOMAIN_START_PAUSED) < 0) {
    guardian_tell_not_started(g);
    return sp_err_set(e, SP_EXIT_FAILED, "cannot start %s paused for its offline backup: %s "
                      "(does `virsh start --paused %s` work?)", name, virt_errmsg(), name);
  }
  o->started = true;
  /* Only a help for whoever looks: a failure changes nothing. */
  (void)virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_TITLE, title, NULL, NULL,
                             VIR_DOMAIN_AFFECT_LIVE);
  return 0;
}

int offline_same_state(const struct captured *before, const struct captured *after,
                       struct sp_err *e)
{
  if (before->nvram != after->nvram || (before->nvram && strcmp(before->nv.sha256,
                                                                  after->nv.sha256) != 0))
    return sp_err_set(e, SP_EXIT_FAILED, "the NVRAM changed between the VM's paused start and "
                      "the backup job (something else writes it while the VM is off?): no "
                      "point; try again");
  if (before->tpm != after->tpm || (before->tpm && strcmp(before->tree.digest,
                                                          after->tree.digest) != 0))
    return sp_err_set(e, SP_EXIT_FAILED, "the TPM state changed between the VM's paused start "
                      "and the backup job (something else writes it while the VM is off?): no "
                      "point; try again");
  return 0;
}

void offline_stop(virDomainPtr dom, struct guardian *g, struct offline *o,
                  const struct sp_log *log)
{
  const char *name = virDomainGetName(dom);
  if (o->started) {
    int state = 0, reason;
    if (virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_RUNNING) {
      /* Someone resumed it: the guest is theirs now. */
      o->left_running = true;
      (void)virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_TITLE, "", NULL, NULL,
                                 VIR_DOMAIN_AFFECT_LIVE);
      sp_warn(log, "%s was resumed during its offline backup: it is left running (the point "
              "is from the instant of the paused start)", name);
    } else if (state != VIR_DOMAIN_SHUTOFF && virDomainDestroy(dom) < 0) {
      sp_error(log, "cannot stop %s after its offline backup: %s; stop it with `virsh destroy "
               "%s`", name, virt_errmsg(), name);
    }
    o->started = false;
    guardian_tell_not_started(g);
  }
  if (o->marked) {
    struct sp_err e = { 0 };
    if (o->host->ops->rm_rf(o->host, o->mark, &e) < 0)
      sp_warn(log, "the offline backup's mark %s stays: %s", o->mark, e.msg);
    o->marked = false;
  }
  free(o->mark);
  o->mark = NULL;
}
