/* libFuzzer harness: a libvirt domain XML as stillpoint reads it
 * (common/domain_xml.c) - from libvirt, and from a point's domain.xml at
 * restore. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct sp_domain d;
  struct sp_err e = { 0 };
  if (sp_domain_parse((const char *)data, size, &d, &e) == 0) {
    for (size_t i = 0; i < d.ndisks; i++) {
      if (!d.disks[i].target)
        abort();
      (void)sp_disk_skip_reason(&d.disks[i]);
      (void)sp_disk_can_bitmap(&d.disks[i]);
      if (sp_domain_disk(&d, d.disks[i].target) == NULL)
        abort();
    }
    sp_domain_free(&d);
  } else if (!e.msg[0]) {
    abort();
  }
  return 0;
}
