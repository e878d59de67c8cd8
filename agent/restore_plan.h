/* Where each thing of a restored VM goes: its disks, NVRAM and TPM
 * state.  A pure decision, separate from the writing, so that restore and
 * instant restore place things alike and tests can ask it directly.
 *
 * Destinations never come from the point: a point is untrusted input, and
 * a path in it could name /etc/cron.d/x.  They come from --disks-to, from
 * the definition being replaced, or from libvirt's own directories (NVRAM,
 * swtpm).  The paths the point recorded are shown, and used only when the
 * administrator asks with --recorded-paths; even then a disk's recorded
 * path must equal the source of the same target in the point's domain
 * XML, be a plain absolute path, and lie outside the system's own
 * directories (and it is created without replacing anything, below a
 * directory held open and checked as trusted, by the writer). */
#ifndef SP_RESTORE_PLAN_H
#define SP_RESTORE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "domain_xml.h"
#include "err.h"
#include "manifest.h"
#include "point_chain.h"

#define SP_LIBVIRT_NVRAM_DIR "/var/lib/libvirt/qemu/nvram"

struct restore_plan_in {
  const struct sp_manifest *m;
  const struct sp_domain *point_dom;  /* the point's domain.xml, parsed */
  const struct sp_domain *replaced;   /* the definition --replace replaces, or NULL */
  const char *name, *uuid;            /* of the restored domain */
  const char *disks_to;               /* --disks-to DIR, or NULL */
  bool recorded;                      /* --recorded-paths */
  bool keep_chain;
};

struct restore_plan_disk {
  const char *target;
  char *dir, *file;      /* the destination: a file name in a directory */
  const char *format;    /* "qcow2" | "raw": what is written there */
  const char *recorded;  /* the path the point recorded (shown), may be NULL */
  bool replaces;         /* the file of the definition being replaced: moved aside */
};

struct restore_plan {
  struct restore_plan_disk *disks; /* in the manifest's order */
  size_t ndisks;
  char *nvram_dir, *nvram_file;    /* NULL without NVRAM in the point */
  bool nvram_replaces;
  char *tpm_dir;                   /* NULL without TPM state in the point */
  bool tpm_source;                 /* the XML names tpm_dir as the backend's <source> */
};

/* Exit 3 with the option that would make it possible when a destination
 * cannot be decided (no --disks-to for a disk, a recorded path refused). */
int restore_plan_make(const struct restore_plan_in *in, struct restore_plan *p,
                      struct sp_err *e);
void restore_plan_free(struct restore_plan *p);

/* Whether path lies in a directory where a new file alone has an effect
 * on the host (/etc, /usr, /boot, /root, /var/spool, ...) or in
 * libvirt's and stillpoint's own state: never a disk's destination. */
bool restore_path_system(const char *path);

/* The format a flattened disk is written in: the VM disk's (raw for a
 * raw disk), qcow2 otherwise. */
const char *restore_plan_flat_format(const struct sp_manifest_disk *d);

/* Whether a chain is flattened by copying its images (each hashed as it
 * passes) and committing the overlays into the full image's copy, rather
 * than hashed in place and converted: one read of every image instead of
 * two.  Only qcow2 in and out, and only when every image has the same
 * virtual size (qemu-img commit grows the base to its top, never shrinks
 * it; backup takes a full point after a disk changed size, so only a point
 * written otherwise has such a chain).  The caller hashes the chain first
 * exactly when this is false. */
bool restore_plan_flatten_by_copy(const struct sp_disk_chain *c, const char *format);

#endif
