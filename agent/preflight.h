/* Everything a backup needs, checked without touching the VM: the disks
 * and how each will be copied, NVRAM and TPM state and whether we may read
 * them, the guest agent, a job already running.  `stillpoint check` prints
 * it; `stillpoint backup` refuses (exit 3) on any refusal it holds. */
#ifndef SP_PREFLIGHT_H
#define SP_PREFLIGHT_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "config.h"
#include "domain_xml.h"
#include "err.h"
#include "freeze_probe.h"
#include "host.h"
#include "qemu_access.h"
#include "qemu_conf.h"
#include "state_locator.h"
#include "strv.h"

struct pf_disk {
  const struct sp_disk *disk; /* points into preflight.dom */
  const char *skip;           /* why it is left out, NULL when copied */
  bool full_only;             /* no dirty bitmap possible (raw) */
  unsigned long long capacity;
};

struct preflight {
  char *xml;                  /* live XML */
  struct sp_domain dom;
  int state;                  /* VIR_DOMAIN_* */
  bool offline;               /* shut off: an offline point (started paused for the job) */
  struct pf_disk *disks;
  size_t ndisks;
  bool capture_nvram;         /* present, readable and policy wants it */
  struct sp_file_info nvram;
  bool capture_tpm;
  struct sp_tpm_location tpm;
  struct sp_qemu_conf qc;
  bool tls_ready;             /* transport = tcp could run: the hypervisor's NBD TLS
                                 certificates and this machine's client certificate */
  enum pf_agent agent;
  struct qemu_creds qemu;     /* who QEMU is, for the directories it must reach */
  bool apparmor_rule;         /* stillpoint's AppArmor rule is included (confined VMs) */
  struct sp_strv refusals;    /* each a line that says what to do */
  struct sp_strv warnings;
};

/* h: the hypervisor the state files are on (host.h). */
int preflight_run(virDomainPtr dom, const struct sp_config *cfg, struct sp_host *h,
                  struct preflight *pf,
                  struct sp_err *e);
void preflight_free(struct preflight *pf);
size_t preflight_ndisks_copied(const struct preflight *pf);

#endif
