#include "qcow2_layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
  MAGIC = 0x514649fb, /* "QFI\xfb" */
  VERSION = 3,
  HEADER_LEN = 104, /* version 3 without the compression type: zlib, never used here */
  REFCOUNT_ORDER = 4, /* 16-bit refcounts, qemu's default */
  EXT_BACKING_FORMAT = 0xe2792aca,
  /* Entries of one cluster of each table. */
  TABLE_ENTRIES = SP_QCOW2_CLUSTER / 8,
  REFBLOCK_ENTRIES = SP_QCOW2_CLUSTER * 8 / (1 << REFCOUNT_ORDER),
  MAX_BACKING = 1023,
};

/* A cluster that is the only user of what it points to (refcount 1). */
#define OFLAG_COPIED (1ull << 63)
/* An L2 entry that reads as zeroes whatever the backing file holds. */
#define OFLAG_ZERO 1ull

static uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

static void put32(unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}

int sp_qcow2_map_init(struct sp_qcow2_map *m, uint64_t vsize, struct sp_err *e)
{
  *m = (struct sp_qcow2_map){ .nclusters = div_up(vsize, SP_QCOW2_CLUSTER) };
  size_t words = (size_t)div_up(m->nclusters, 64);
  m->data = calloc(words ? words : 1, sizeof *m->data);
  m->zero = calloc(words ? words : 1, sizeof *m->zero);
  if (!m->data || !m->zero)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "the map of %llu clusters",
                      (unsigned long long)m->nclusters);
  return 0;
}

static bool bit(const uint64_t *v, uint64_t g) { return (v[g / 64] >> (g % 64)) & 1; }

void sp_qcow2_map_mark(struct sp_qcow2_map *m, uint64_t off, uint64_t len, bool data)
{
  uint64_t first = off / SP_QCOW2_CLUSTER, end = div_up(off + len, SP_QCOW2_CLUSTER);
  if (end > m->nclusters)
    end = m->nclusters;
  for (uint64_t g = first; g < end; g++) {
    const uint64_t b = 1ull << (g % 64);
    if (data) {
      m->data[g / 64] |= b;
      m->zero[g / 64] &= ~b;
    } else if (!(m->data[g / 64] & b)) {
      m->zero[g / 64] |= b;
    }
  }
}

bool sp_qcow2_map_is_data(const struct sp_qcow2_map *m, uint64_t g)
{
  return g < m->nclusters && bit(m->data, g);
}

bool sp_qcow2_map_is_zero(const struct sp_qcow2_map *m, uint64_t g)
{
  return g < m->nclusters && bit(m->zero, g);
}

void sp_qcow2_map_free(struct sp_qcow2_map *m)
{
  free(m->data);
  free(m->zero);
  *m = (struct sp_qcow2_map){ 0 };
}

/* Does L1 entry i need an L2 table: any data or zero cluster under it?
 * (An L2 table covers 8192 clusters: 128 whole words of the map.) */
static bool has_l2(const struct sp_qcow2_map *m, uint64_t i)
{
  uint64_t w0 = i * TABLE_ENTRIES / 64, w1 = div_up(m->nclusters, 64);
  if (w1 > w0 + TABLE_ENTRIES / 64)
    w1 = w0 + TABLE_ENTRIES / 64;
  for (uint64_t w = w0; w < w1; w++)
    if (m->data[w] | m->zero[w])
      return true;
  return false;
}

int sp_qcow2_layout(struct sp_qcow2_layout *l, uint64_t vsize, const struct sp_qcow2_map *map,
                    const char *backing, struct sp_err *e)
{
  *l = (struct sp_qcow2_layout){ .vsize = vsize, .map = map, .backing = backing };
  if (backing && (strlen(backing) == 0 || strlen(backing) > MAX_BACKING))
    return sp_err_set(e, SP_EXIT_FAILED, "backing file name %s: empty or longer than %d bytes",
                      backing, MAX_BACKING);
  l->l1_entries = div_up(map->nclusters, TABLE_ENTRIES);
  l->l1 = l->l1_entries ? div_up(l->l1_entries, TABLE_ENTRIES) : 1;
  for (uint64_t i = 0; i < l->l1_entries; i++)
    l->l2 += has_l2(map, i);
  for (uint64_t w = 0; w < div_up(map->nclusters, 64); w++)
    l->data += (uint64_t)__builtin_popcountll(map->data[w]);
  /* The refcount blocks count themselves and the table that lists them:
   * grow both until the file they describe fits. */
  l->reftable = l->refblocks = 1;
  for (;;) {
    l->total = 1 + l->reftable + l->l1 + l->data + l->l2 + l->refblocks;
    uint64_t blocks = div_up(l->total, REFBLOCK_ENTRIES);
    uint64_t table = div_up(blocks, TABLE_ENTRIES);
    if (blocks <= l->refblocks && table <= l->reftable)
      break;
    l->refblocks = blocks > l->refblocks ? blocks : l->refblocks;
    l->reftable = table > l->reftable ? table : l->reftable;
  }
  return 0;
}

uint64_t sp_qcow2_data_at(const struct sp_qcow2_layout *l)
{
  return 1 + l->reftable + l->l1;
}

static uint64_t l2_at(const struct sp_qcow2_layout *l)
{
  return sp_qcow2_data_at(l) + l->data;
}

static uint64_t refblocks_at(const struct sp_qcow2_layout *l)
{
  return l2_at(l) + l->l2;
}

static void render_header(const struct sp_qcow2_layout *l, unsigned char *buf)
{
  const uint64_t c = SP_QCOW2_CLUSTER;
  put32(buf, MAGIC);
  put32(buf + 4, VERSION);
  put32(buf + 20, SP_QCOW2_CLUSTER_BITS);
  put64(buf + 24, l->vsize);
  put32(buf + 36, (uint32_t)l->l1_entries);
  put64(buf + 40, (1 + l->reftable) * c);
  put64(buf + 48, c);
  put32(buf + 56, (uint32_t)l->reftable);
  put32(buf + 96, REFCOUNT_ORDER);
  put32(buf + 100, HEADER_LEN);
  size_t off = HEADER_LEN;
  if (l->backing) {
    /* Backing format "qcow2": nothing probes the parent's format. */
    put32(buf + off, EXT_BACKING_FORMAT);
    put32(buf + off + 4, 5);
    memcpy(buf + off + 8, "qcow2", 5);
    off += 16;
  }
  off += 8; /* the end of the extensions: type 0, length 0 */
  if (l->backing) {
    size_t n = strlen(l->backing);
    put64(buf + 8, off);
    put32(buf + 16, (uint32_t)n);
    memcpy(buf + off, l->backing, n);
  }
}

static void render_reftable(const struct sp_qcow2_layout *l, uint64_t j, unsigned char *buf)
{
  for (uint64_t k = 0; k < TABLE_ENTRIES; k++) {
    uint64_t b = j * TABLE_ENTRIES + k;
    if (b < l->refblocks)
      put64(buf + 8 * k, (refblocks_at(l) + b) * SP_QCOW2_CLUSTER);
  }
}

/* L1 cluster j; *placed counts the L2 tables before it. */
static void render_l1(const struct sp_qcow2_layout *l, uint64_t j, uint64_t *placed,
                      unsigned char *buf)
{
  for (uint64_t k = 0; k < TABLE_ENTRIES; k++) {
    uint64_t i = j * TABLE_ENTRIES + k;
    if (i >= l->l1_entries)
      break;
    if (has_l2(l->map, i))
      put64(buf + 8 * k, (l2_at(l) + (*placed)++) * SP_QCOW2_CLUSTER | OFLAG_COPIED);
  }
}

int sp_qcow2_render_head(const struct sp_qcow2_layout *l, unsigned char *buf,
                         sp_qcow2_cluster_fn *fn, void *ud)
{
  uint64_t placed = 0;
  for (uint64_t c = 0; c < sp_qcow2_data_at(l); c++) {
    memset(buf, 0, SP_QCOW2_CLUSTER);
    if (c == 0)
      render_header(l, buf);
    else if (c <= l->reftable)
      render_reftable(l, c - 1, buf);
    else
      render_l1(l, c - 1 - l->reftable, &placed, buf);
    int rc = fn(ud, c, buf);
    if (rc)
      return rc;
  }
  return 0;
}

/* The L2 table of L1 entry i; *k counts the data clusters before it. */
static void render_l2(const struct sp_qcow2_layout *l, const uint64_t *holes, uint64_t i,
                      uint64_t *k, unsigned char *buf)
{
  const struct sp_qcow2_map *m = l->map;
  const uint64_t g0 = i * TABLE_ENTRIES;
  for (uint64_t j = 0; j < TABLE_ENTRIES && g0 + j < m->nclusters; j++) {
    uint64_t entry = 0;
    if (sp_qcow2_map_is_data(m, g0 + j)) {
      const uint64_t slot = (*k)++;
      entry = bit(holes, slot) ? OFLAG_ZERO
                               : (sp_qcow2_data_at(l) + slot) * SP_QCOW2_CLUSTER | OFLAG_COPIED;
    } else if (sp_qcow2_map_is_zero(m, g0 + j)) {
      entry = OFLAG_ZERO;
    }
    put64(buf + 8 * j, entry);
  }
}

/* Refcount block j: 1 for every cluster of the file but the holes. */
static void render_refblock(const struct sp_qcow2_layout *l, const uint64_t *holes, uint64_t j,
                            unsigned char *buf)
{
  const uint64_t data_at = sp_qcow2_data_at(l);
  for (uint64_t k = 0; k < REFBLOCK_ENTRIES; k++) {
    const uint64_t c = j * REFBLOCK_ENTRIES + k;
    if (c >= l->total)
      break;
    const bool hole = c >= data_at && c - data_at < l->data && bit(holes, c - data_at);
    buf[2 * k + 1] = !hole;
  }
}

int sp_qcow2_render_tail(const struct sp_qcow2_layout *l, const uint64_t *holes,
                         unsigned char *buf, sp_qcow2_cluster_fn *fn, void *ud)
{
  uint64_t i = 0, k = 0;
  for (uint64_t c = l2_at(l); c < l->total; c++) {
    memset(buf, 0, SP_QCOW2_CLUSTER);
    if (c < refblocks_at(l)) {
      while (!has_l2(l->map, i))
        i++;
      render_l2(l, holes, i++, &k, buf);
    } else {
      render_refblock(l, holes, c - refblocks_at(l), buf);
    }
    int rc = fn(ud, c, buf);
    if (rc)
      return rc;
  }
  return 0;
}
