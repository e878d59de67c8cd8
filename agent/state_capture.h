/* Capture until stable, inside the pause window: QEMU's stop does not
 * wait for an in-flight TPM command, so a TPM state tree is re-read until
 * no swtpm temp file (TMP*) is present and two reads hash the same, and an
 * NVRAM file until two reads hash the same.  The reads go through a host
 * (host.h: this machine or one over SSH), so the rule is written once. */
#ifndef SP_STATE_CAPTURE_H
#define SP_STATE_CAPTURE_H

#include "err.h"
#include "host.h"
#include "state_files.h"

struct sp_capture_stats {
  int reads;            /* how many times the tree was read */
  int temp_seen;        /* reads that found a swtpm temp file */
  long ms;
};

/* Reads until stable: no temp file and two equal digests in a row, at
 * most max_reads reads and budget_ms milliseconds. */
int sp_host_tree_capture(struct sp_host *h, const char *dir, int max_reads, long budget_ms,
                         struct sp_tree *t, struct sp_capture_stats *st, struct sp_err *e);
/* The same for one file: two equal digests in a row. */
int sp_host_blob_capture(struct sp_host *h, const char *path, int max_reads, long budget_ms,
                         struct sp_blob *b, struct sp_capture_stats *st, struct sp_err *e);

/* The same on this machine. */
int sp_tree_capture(const char *dir, int max_reads, long budget_ms, struct sp_tree *t,
                    struct sp_capture_stats *st, struct sp_err *e);
int sp_blob_capture(const char *path, int max_reads, long budget_ms, struct sp_blob *b,
                    struct sp_capture_stats *st, struct sp_err *e);

#endif
