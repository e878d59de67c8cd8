#include "freeze_probe.h"

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "virt.h"

void freeze_agent_bound(virDomainPtr dom, int timeout_s, const struct sp_log *log)
{
  /* Per domain in libvirtd: it bounds our calls and the guardian's, and
   * libvirt's guest-sync, which a per-call timeout does not. */
  if (virDomainAgentSetResponseTimeout(dom, timeout_s, 0) < 0 && log)
    sp_warn(log, "cannot bound the guest agent's answer time: %s", virt_errmsg());
}

void freeze_agent_unbound(virDomainPtr dom)
{
  /* libvirt has no getter for the previous value: back to its default. */
  virDomainAgentSetResponseTimeout(dom, VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_DEFAULT, 0);
}

enum pf_agent freeze_probe(virDomainPtr dom, int timeout_s, char *why, size_t n)
{
  why[0] = '\0';
  freeze_agent_bound(dom, timeout_s, NULL);
  _cleanup_free_ char *reply =
    virDomainQemuAgentCommand(dom, "{\"execute\":\"guest-fsfreeze-status\"}", timeout_s, 0);
  enum pf_agent st = PF_AGENT_SILENT;
  if (!reply) {
    /* Read the error before libvirt is called again. */
    st = virt_errcode() == VIR_ERR_AGENT_UNRESPONSIVE ? PF_AGENT_SILENT : PF_AGENT_NO_FREEZE;
    snprintf(why, n, "%s", virt_errmsg());
  } else {
    json_object *o = json_tokener_parse(reply), *ret = NULL;
    const char *s = o && json_object_object_get_ex(o, "return", &ret) &&
                    json_object_is_type(ret, json_type_string) ? json_object_get_string(ret)
                                                               : NULL;
    if (s && strcmp(s, "thawed") == 0)
      st = PF_AGENT_THAWED;
    else if (s && strcmp(s, "frozen") == 0)
      st = PF_AGENT_FROZEN;
    else {
      st = PF_AGENT_NO_FREEZE;
      snprintf(why, n, "unexpected answer to guest-fsfreeze-status: %.200s", reply);
    }
    json_object_put(o);
  }
  freeze_agent_unbound(dom);
  return st;
}
