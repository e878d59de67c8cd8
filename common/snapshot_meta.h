/* snapshot.json of a state snapshot (state_snapshots.h): its metadata as
 * JSON.  Read back with every name and hash checked, since a name becomes
 * a path component when the snapshot is read or restored. */
#ifndef SP_SNAPSHOT_META_H
#define SP_SNAPSHOT_META_H

#include <stddef.h>

#include "err.h"
#include "state_snapshots.h"

#define SP_SNAP_FORMAT 1

/* A malloc'd JSON document, NULL when out of memory. */
char *sp_snap_meta_format(const struct sp_snapshot *s);
/* Fills the metadata fields of s (no file data). */
int sp_snap_meta_parse(const char *text, size_t len, struct sp_snapshot *s, struct sp_err *e);

#endif
