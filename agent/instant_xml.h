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
#include "xalloc.h"

/* A Ceph point's disk: an RBD clone, a network disk libvirt 9.0 can say
 * (no namespace: docs/facts.md, "Ceph"), the monitors named by <host>
 * (QEMU cannot read a root-only ceph.conf) and the key in a libvirt
 * secret of type ceph. */
struct instant_xml_host {
  const char *name;
  unsigned port;          /* 0: none */
};

struct instant_xml_rbd {
  const char *pool;       /* the image is in its default namespace */
  const char *user;       /* cephx id, without "client." */
  const char *secret_uuid;
  const struct instant_xml_host *hosts;
  size_t nhosts;
};

struct instant_xml_disk {
  const char *target;
  const char *source;     /* the file the disk opens; with rbd: the image's name */
  const char *format;     /* its format: qcow2 for an overlay, raw for an RBD image */
  const char *nbd_socket; /* the backing's unix socket (raw NBD export); NULL: no backing */
  const struct instant_xml_rbd *rbd; /* non-NULL: a network disk on RBD image source */
};

/* *out: xml with every listed disk a file disk on source (driver type
 * format) and, with nbd_socket, <backingStore type='network'> of that
 * socket, any other backingStore removed; with rbd, a network disk of
 * protocol rbd on POOL/source with its hosts and <auth>.  A target the XML does not
 * have exactly once is an error (exit 1). */
int instant_xml_disks(const char *xml, size_t len, const struct instant_xml_disk *d, size_t n,
                      char **out, struct sp_err *e);

/* "<path>.overlay": the overlay of a disk whose final image is path; and
 * back (NULL when name is not an overlay's). */
SP_XALLOC char *instant_overlay_name(const char *final);
char *instant_final_name(const char *overlay);

#endif
