/* libFuzzer harness: the restored domain XML (agent/restore_xml.c) and its
 * allow-list (agent/domain_filter.c), fed a point's domain.xml.  The first
 * byte picks the options.  What restore accepts without --trust-domain-xml
 * must be accepted again as it is (the filter is idempotent: nothing it
 * lets through is refused later), and libvirt's capabilities parser gets
 * the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain_filter.h"
#include "restore_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const emulators[] = { "/usr/bin/qemu-system-x86_64" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned flags = data[0];
  const char *xml = (const char *)data + 1;
  size_t len = size - 1;
  static const struct restored_disk disks[] = {
    { "vda", "/srv/restored/vda.qcow2", "qcow2" },
    { "vdb", "/srv/restored/vdb.raw", "raw" },
  };
  struct restore_xml_opts o = {
    .name = (flags & 1) ? "restored" : NULL,
    .uuid = (flags & 1) ? "2b1c7a5e-6f3d-4c4b-9a57-0e3d2f1c9a10" : NULL,
    .new_macs = flags & 2,
    .disks = disks,
    .ndisks = (flags >> 2) & 3 ? ((flags >> 2) & 3) - 1 : 0,
    .nvram_path = (flags & 16) ? "/var/lib/libvirt/qemu/nvram/restored_VARS.fd" : NULL,
    .tpm_dir = (flags & 32) ? "/var/lib/libvirt/swtpm/u/tpm2" : NULL,
    .tpm_source = flags & 64,
    .other_disks = (enum restore_other_disks)((flags >> 4) % 3),
    .trust = flags & 128,
    .emulators = emulators,
    .nemulators = 1,
  };
  if (o.ndisks > 2)
    o.ndisks = 2;
  char *out = NULL, *filtered = NULL;
  struct sp_err e = { 0 };
  int rc = restore_xml(xml, len, &o, &out, o.trust ? &filtered : NULL, &e);
  if (rc < 0 && !e.msg[0])
    abort();
  if (rc == 0 && !o.trust) {
    char *again = NULL;
    if (restore_xml(out, strlen(out), &o, &again, NULL, &e) < 0)
      abort();
    free(again);
  }
  free(out);
  free(filtered);
  char **emu = NULL;
  size_t n = 0;
  if (domain_filter_emulators(xml, len, &emu, &n, &e) == 0)
    for (size_t i = 0; i < n; i++)
      free(emu[i]);
  free(emu);
  return 0;
}
