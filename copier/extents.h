/* Block status of the source, as the server describes it in its meta
 * contexts, turned into what each byte range needs from the copier.
 *
 * A window of block status brings one extent list per context:
 * base:allocation (flags LIBNBD_STATE_HOLE / LIBNBD_STATE_ZERO) and, for
 * an incremental, the dirty bitmap (flag 1 = changed since the parent).
 * The two lists need not end at the same offset: only the part both
 * cover is classified, and the caller asks again from there. */
#ifndef SP_COPY_EXTENTS_H
#define SP_COPY_EXTENTS_H

#include <stddef.h>
#include <stdint.h>

/* Ordered by how much work the range needs: a cluster that mixes two
 * kinds is treated as the larger one (see plan.h). */
enum sp_kind {
  SP_SKIP = 0, /* unchanged since the parent: the overlay leaves it to the backing file */
  SP_ZERO = 1, /* reads as zeroes: write zeroes (or nothing in a fresh full image) */
  SP_DATA = 2, /* read it and write what was read */
};

#define SP_DIRTY_FLAG 1u /* NBD_STATE_DIRTY of qemu:dirty-bitmap:* contexts */

struct sp_extent {
  uint64_t len;
  uint32_t flags;
};

/* One context's extents for one window, in order, starting at the window's offset. */
struct sp_extents {
  struct sp_extent *v;
  size_t n, cap;
};

/* Appends an extent (merged into the last one when the flags are equal). */
void sp_extents_push(struct sp_extents *x, uint64_t len, uint32_t flags);
uint64_t sp_extents_total(const struct sp_extents *x);
void sp_extents_reset(struct sp_extents *x);
void sp_extents_free(struct sp_extents *x);

typedef void sp_piece_fn(void *ud, uint64_t off, uint64_t len, enum sp_kind kind);

/* Classifies [off, end) as far as both lists reach, calling fn for each
 * maximal run of one kind, in order.  alloc NULL means "all data" (the
 * server has no base:allocation); dirty NULL means "all changed" (a full
 * copy).  Returns the offset up to which fn was called: off when a list
 * is empty. */
uint64_t sp_extents_classify(const struct sp_extents *alloc, const struct sp_extents *dirty,
                             uint64_t off, uint64_t end, sp_piece_fn *fn, void *ud);

#endif
