/* A state snapshot (the hook's snapshot store: state_snapshots.h) and its
 * snapshot.json: the metadata as JSON.  Read back with every name and hash
 * checked, since a name becomes a path component when the snapshot is read
 * or restored.  The store builds on this module, never the other way. */
#ifndef SP_SNAPSHOT_META_H
#define SP_SNAPSHOT_META_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "state_files.h"

#define SP_SNAP_FORMAT 1

struct sp_snapshot {
  char *id;              /* set by sp_snap_write and sp_snap_read */
  char *created;         /* ISO 8601 UTC, set by sp_snap_write */
  char *domain;          /* domain name when taken */
  char *uuid;            /* checked with sp_uuid_ok before any path is built */
  char *event;           /* what took it: "release end -", "before-restore" */
  bool pinned;           /* PINNED present (read only) */

  bool has_tpm;
  char *tpm_version;     /* "2.0" | "1.2" */
  char *tpm_subdir;      /* "tpm2" | "tpm1.2" */
  char *tpm_state_dir;   /* where the state was taken from */
  char *tpm_secret_uuid; /* encrypted state: the libvirt secret it needs */
  struct sp_tree tpm;    /* data only after a read with data */
  char *tpm_stat;        /* sp_snap_stat_sig of the source when taken (NULL: unknown) */

  bool has_nvram;
  bool nvram_block;      /* taken from a block device */
  char *nvram_path;      /* where the NVRAM was taken from */
  struct sp_blob nvram;  /* name = file name under nvram/; data as for tpm */
  /* The source's times when it was taken: equal times and size at the
   * next start mean unchanged, without reading megabytes (0: unknown). */
  long long nvram_mtime_ns, nvram_ctime_ns;

  char *xml;             /* domain.xml; only after a read with data */
  size_t xml_len;
};

/* A malloc'd JSON document, NULL when out of memory. */
char *sp_snap_meta_format(const struct sp_snapshot *s);
/* Fills the metadata fields of s (no file data). */
int sp_snap_meta_parse(const char *text, size_t len, struct sp_snapshot *s, struct sp_err *e);

#endif
