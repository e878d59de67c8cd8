/* The domain XML of an instant restore (docs/design.md, "Instant
 * restore"): the same definition as a normal restore, but each disk an
 * overlay whose backing is the point's chain served read-only by qemu-nbd
 * on a unix socket - never the point's files themselves, which libvirt's
 * DAC driver would chown to QEMU's user for good (docs/facts.md) - and,
 * once the block copy has pivoted, each disk its final image again.
 * A pure rewrite of libvirt's own XML (the definition restore_xml()
 * filtered), unit-tested without libvirt. */
#ifndef SP_INSTANT_XML_H
#define SP_INSTANT_XML_H

#include <stddef.h>

#include "err.h"

struct instant_xml_disk {
  const char *target;
  const char *source;     /* the file the disk opens */
  const char *format;     /* its format: qcow2 for an overlay */
  const char *nbd_socket; /* the backing's unix socket (raw NBD export); NULL: no backing */
};

/* *out: xml with every listed disk a file disk on source (driver type
 * format) and, with nbd_socket, <backingStore type='network'> of that
 * socket, any other backingStore removed.  A target the XML does not
 * have exactly once is an error (exit 1). */
int instant_xml_disks(const char *xml, size_t len, const struct instant_xml_disk *d, size_t n,
                      char **out, struct sp_err *e);

/* "<path>.overlay": the overlay of a disk whose final image is path; and
 * back (NULL when name is not an overlay's). */
char *instant_overlay_name(const char *final);
char *instant_final_name(const char *overlay);

#endif
