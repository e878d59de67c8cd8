/* The restored domain's XML: the point's domain.xml with the name, UUID,
 * MAC addresses, disk, NVRAM and TPM paths of the restore target, then
 * through the allow-list of domain_filter.h. */
#ifndef SP_RESTORE_XML_H
#define SP_RESTORE_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define SP_RESTORE_XML_MAX_DISKS 1024

struct restored_disk {
  const char *target;
  const char *path;
  const char *format; /* qcow2 | raw */
};

/* Disks of the XML that the point does not hold (never backed up: a
 * CD-ROM, backup='no', shareable): as the point says, their sources are
 * paths of the original's host, so they are refused unless the
 * administrator says what to do. */
enum restore_other_disks {
  RESTORE_OTHER_REFUSE, /* exit 3, naming them */
  RESTORE_OTHER_KEEP,   /* kept as they are */
  RESTORE_OTHER_DROP,   /* removed (a CD-ROM or floppy: left empty) */
};

struct restore_xml_opts {
  const char *name;          /* NULL: keep */
  const char *uuid;          /* NULL: keep */
  bool new_macs;             /* drop <mac address>, libvirt makes new ones */
  const struct restored_disk *disks;
  size_t ndisks;
  const char *nvram_path;    /* NULL: no NVRAM element touched */
  const char *tpm_dir;       /* the TPM's state directory, NULL: no TPM touched */
  bool tpm_source;           /* name tpm_dir as the backend's <source>; else drop any <source> */
  enum restore_other_disks other_disks;
  bool trust;                /* take the XML as it is (after the rewrites above) */
  const char *const *emulators; /* libvirt's, for the filter */
  size_t nemulators;
};

/* *out: the XML to define.  Without trust, anything the filter finds is
 * refused (exit 3, every finding named); with trust, *filtered (may be
 * NULL) gets what the filter would have made of it, for the diff. */
int restore_xml(const char *xml, size_t len, const struct restore_xml_opts *o, char **out,
                char **filtered, struct sp_err *e);

/* A random (version 4) UUID. */
int restore_new_uuid(char out[37], struct sp_err *e);

#endif
