/* A point's disk image is opened as what stillpoint made, never as what
 * its bytes claim to be.  qemu-img without -f probes the format, and a
 * qcow2 header can name other files: a backing file, an external data
 * file (the image's clusters then live in, say, /etc/shadow or a block
 * device), an encryption header.  A guest controls every byte of its disk,
 * so a raw image written by a copier such as nbdcopy may well start with
 * such a header.  Hence:
 *
 *  - the format comes from the manifest (disks[].image_format), never from
 *    probing;
 *  - a qcow2 header is read here, by our own parser, before qemu-img sees
 *    the file: an external data file, encryption, a "corrupt" or an
 *    unknown incompatible feature, or a backing file other than the
 *    expected one is refused;
 *  - qemu-img is then given the image as a json: filename with its driver
 *    and its whole backing chain spelled out, each layer a descriptor we
 *    opened and checked (/proc/self/fd/N), so it follows no name from any
 *    header.
 *
 * The same check runs on a copier's output at backup, and in restore,
 * verify and prune. */
#ifndef SP_IMAGE_CHECK_H
#define SP_IMAGE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* What a qcow2 header says (QEMU's docs/interop/qcow2.txt). */
struct sp_qcow2_header {
  unsigned version;           /* 2 or 3 */
  unsigned cluster_bits;      /* 9..21 */
  uint64_t size;              /* virtual size in bytes */
  uint32_t crypt_method;      /* 0: none, 1: AES, 2: LUKS */
  uint64_t incompatible;      /* feature bits (version 3) */
  bool has_backing;
  char backing[1024];         /* the backing file name as written */
  char backing_format[64];    /* "" when the header does not say */
  bool data_file;             /* the external data file bit or its name extension */
  char data_file_name[1024];  /* "" when not named */
  bool encryption_header;     /* a full disk encryption header extension */
};

/* Parses the first cluster of an image (buf, len bytes; more is
 * ignored).  Refuses what is not a well-formed qcow2 header: another
 * magic, a version other than 2 or 3, fields pointing outside the first
 * cluster, a backing name longer than 1023 bytes or holding a NUL. */
int sp_qcow2_header_parse(const unsigned char *buf, size_t len, struct sp_qcow2_header *h,
                          struct sp_err *e);

/* The policy on a parsed header: no encryption, no external data file,
 * not marked corrupt, no incompatible feature but the ones stillpoint
 * knows, and a backing file exactly want_backing (NULL: none), in qcow2
 * when the header names a format.  name is the file in messages. */
int sp_qcow2_header_check(const struct sp_qcow2_header *h, const char *name,
                          const char *want_backing, struct sp_err *e);

/* Checks an open image: format "raw" (anything goes, it is data) or
 * "qcow2" (its header read with pread and checked as above).  Any other
 * format is refused.  vsize (may be NULL) gets a qcow2's virtual size
 * or a raw file's size. */
int sp_image_check_fd(int fd, const char *name, const char *format, const char *want_backing,
                      uint64_t *vsize, struct sp_err *e);

/* One layer of a chain as qemu-img is to open it: a checked format and
 * the child's descriptor number of the image (sp_run_fds: 3 + i). */
struct sp_image_layer {
  const char *format; /* "qcow2" | "raw" */
  int child_fd;
};

/* json:{...} naming the chain layers[0] (top) .. layers[n-1] (bottom) with
 * every driver, file and backing given, the bottom's backing null: qemu-img
 * opens exactly these descriptors.  malloc'd; NULL on a bad format or no
 * memory. */
char *sp_image_json(const struct sp_image_layer *layers, size_t n);

#endif
