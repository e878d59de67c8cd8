/* A disk of a point turned back into a VM disk: the chain flattened into
 * one image (qemu-img convert), or copied as a chain whose backing paths
 * point at the copies. */
#ifndef SP_RESTORE_DISKS_H
#define SP_RESTORE_DISKS_H

#include <stdbool.h>

#include "err.h"
#include "point_chain.h"

/* Writes dest (must not exist; 0600).  format: "qcow2" or "raw" for a
 * flattened disk; keep_chain writes qcow2 files dest, dest.<id>, ... */
int restore_disk(const struct sp_disk_chain *c, const char *dest, const char *format,
                 bool keep_chain, struct sp_err *e);
/* Removes what restore_disk made for this chain (after a later failure). */
void restore_disk_undo(const struct sp_disk_chain *c, const char *dest, bool keep_chain);

#endif
