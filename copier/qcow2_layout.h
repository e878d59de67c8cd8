/* A qcow2 image laid out before a byte of it is written, so that it can be
 * written (and hashed) front to back in one pass: the copier knows from
 * the export's block status, before it reads any data, which guest
 * clusters it will write and which it will mark as zero.
 *
 * The file, cluster by cluster: the header (with the backing file's name
 * and format for an overlay), the refcount table and the L1 table (the
 * head), one data cluster for each data cluster of the map in guest
 * order, then the L2 tables of the L1 entries that have any cluster and
 * the refcount blocks (the tail).  The head is known before the copy and
 * the tail only after it: a data cluster that read as zeroes is left a
 * hole of the file with refcount 0, and its L2 entry says "zero" (which
 * masks the backing file of an overlay).  Every other cluster of the
 * file has refcount 1 and none is ever rewritten, so the file is written
 * and hashed front to back once.  qcow2 version 3, 64 KiB clusters,
 * 16-bit refcounts, no lazy refcounts, no extension but the backing
 * format: what `qemu-img create -f qcow2 -o cluster_size=65536` makes
 * (docs/design.md, "The copier contract"). */
#ifndef SP_COPY_QCOW2_LAYOUT_H
#define SP_COPY_QCOW2_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define SP_QCOW2_CLUSTER_BITS 16
#define SP_QCOW2_CLUSTER (1u << SP_QCOW2_CLUSTER_BITS)

/* What each guest cluster of the image will be: data (a cluster of its
 * own in the file), zero (an overlay's zero cluster, masking the backing
 * file) or nothing (unallocated: the backing file's, or zeroes). */
struct sp_qcow2_map {
  uint64_t nclusters;  /* guest clusters: the virtual size rounded up */
  uint64_t *data;      /* bit g set: guest cluster g is data */
  uint64_t *zero;      /* bit g set: guest cluster g is a zero cluster */
};

int sp_qcow2_map_init(struct sp_qcow2_map *m, uint64_t vsize, struct sp_err *e);
/* Marks the guest clusters covering [off, off + len) as data or zero;
 * data wins over zero.  Ranges beyond the virtual size are ignored. */
void sp_qcow2_map_mark(struct sp_qcow2_map *m, uint64_t off, uint64_t len, bool data);
bool sp_qcow2_map_is_data(const struct sp_qcow2_map *m, uint64_t g);
bool sp_qcow2_map_is_zero(const struct sp_qcow2_map *m, uint64_t g);
void sp_qcow2_map_free(struct sp_qcow2_map *m);

struct sp_qcow2_layout {
  uint64_t vsize;
  const struct sp_qcow2_map *map;
  const char *backing; /* the backing file's name as the header records it, or NULL */
  uint64_t l1_entries;
  /* Clusters of each part, in file order after the header's one. */
  uint64_t reftable, l1, data, l2, refblocks;
  uint64_t total; /* clusters in the file */
};

/* Counts and places everything; fails for a backing name that does not
 * fit the header's cluster (1023 bytes, as qemu). */
int sp_qcow2_layout(struct sp_qcow2_layout *l, uint64_t vsize, const struct sp_qcow2_map *map,
                    const char *backing, struct sp_err *e);

/* The first data cluster: the head's length in clusters. */
uint64_t sp_qcow2_data_at(const struct sp_qcow2_layout *l);

/* Called with each cluster rendered into buf (SP_QCOW2_CLUSTER bytes) and
 * its index in the file; the first non-zero return stops the walk and is
 * returned. */
typedef int sp_qcow2_cluster_fn(void *ud, uint64_t index, const unsigned char *buf);

/* The head: header, refcount table, L1 table. */
int sp_qcow2_render_head(const struct sp_qcow2_layout *l, unsigned char *buf,
                         sp_qcow2_cluster_fn *fn, void *ud);
/* The tail: L2 tables and refcount blocks; holes has bit k set when the
 * k-th data cluster read as zeroes (and was never written). */
int sp_qcow2_render_tail(const struct sp_qcow2_layout *l, const uint64_t *holes,
                         unsigned char *buf, sp_qcow2_cluster_fn *fn, void *ud);

#endif
