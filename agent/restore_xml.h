/* The restored domain's XML: the point's domain.xml with the name, UUID,
 * MAC addresses, disk paths and NVRAM path of the restore target. */
#ifndef SP_RESTORE_XML_H
#define SP_RESTORE_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct restored_disk {
  const char *target;
  const char *path;
  const char *format; /* qcow2 | raw */
};

struct restore_xml_opts {
  const char *name;          /* NULL: keep */
  const char *uuid;          /* NULL: keep */
  bool new_macs;             /* drop <mac address>, libvirt makes new ones */
  const struct restored_disk *disks;
  size_t ndisks;
  const char *nvram_path;    /* NULL: no NVRAM element touched */
};

int restore_xml(const char *xml, size_t len, const struct restore_xml_opts *o, char **out,
                struct sp_err *e);

/* A random (version 4) UUID. */
int restore_new_uuid(char out[37], struct sp_err *e);

#endif
