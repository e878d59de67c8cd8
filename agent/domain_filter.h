/* The restored domain XML through an allow-list: a point's domain.xml is
 * untrusted input, and `virsh define` of it as it is would be root on the
 * host - <qemu:commandline> runs anything, <hostdev> hands a host device
 * to the guest, <filesystem> a host directory, a file chardev makes
 * virtlogd (root) write any file, a <kernel> or <loader> path makes
 * libvirt give any host file to QEMU, a foreign <emulator> runs any
 * program, <seclabel type='none'> lifts QEMU's confinement.
 *
 * domain_filter() walks the XML after restore rewrote it (name, UUID,
 * disk, NVRAM and TPM paths) and names everything that is not on the
 * list: elements stillpoint does not know at the top and in <devices>,
 * the ones that reach the host, namespaced elements (qemu:*), a DTD or
 * entity, and every absolute path but the ones restore wrote, the
 * emulators libvirt offers, firmware under /usr/share, kernels under
 * /boot or /var/lib/libvirt/boot, chardev and socket paths in libvirt's
 * own directories.  The administrator may take the XML as it is
 * (restore --trust-domain-xml); restore then shows what the filter
 * would have removed. */
#ifndef SP_DOMAIN_FILTER_H
#define SP_DOMAIN_FILTER_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct domain_filter_opts {
  const char *const *own_paths;   /* what restore wrote into the XML */
  size_t nown;
  const char *const *emulators;   /* libvirt's capabilities */
  size_t nemulators;
  const char *const *kept_disks;  /* targets kept as they are (--other-disks keep) */
  size_t nkept;
};

struct domain_finding {
  char *where;  /* the element: /domain/devices/hostdev[1] */
  char *what;   /* why it is refused, in words */
};

struct domain_findings {
  struct domain_finding *v;
  size_t n;
};

/* Collects every finding in doc; with strip, also removes each element
 * found (an attribute: the element holding it), which leaves "the
 * filtered XML".  -1 only on no memory. */
int domain_filter(xmlDocPtr doc, const struct domain_filter_opts *o, bool strip,
                  struct domain_findings *f, struct sp_err *e);
void domain_findings_free(struct domain_findings *f);

/* One line per finding, "  <where>: <what>\n", malloc'd. */
char *domain_findings_text(const struct domain_findings *f);

/* The <guest><arch><emulator> paths of libvirt's capabilities XML
 * (and <domain><emulator> overrides); malloc'd strings. */
int domain_filter_emulators(const char *caps_xml, size_t len, char ***out, size_t *n,
                            struct sp_err *e);

#endif
