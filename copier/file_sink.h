/* Where the data goes when stillpoint-copy writes the qcow2 image itself
 * (every output but a compressed one): the layout of qcow2_layout.h, its
 * head written first, then each data cluster in guest order by one
 * writer thread, O_DIRECT where the file system takes it, then the tail.  Everything is
 * hashed as it passes, in file order, so the image's SHA-256 is known
 * when the copy ends and nobody reads the image again for SHA256SUMS
 * (docs/design.md, "The copier contract"; docs/facts.md, "Timings").
 *
 * The caller (copy_loop.c) hands over ranges in guest order; a range that
 * does not match the layout (block status that changed under the copy,
 * a data cluster that never came) fails the copy instead of writing an
 * image that lies. */
#ifndef SP_COPY_FILE_SINK_H
#define SP_COPY_FILE_SINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "qcow2_layout.h"
#include "sha256.h"

struct sink_op;

struct file_sink {
  int fd; /* not owned */
  struct sp_qcow2_layout layout;
  struct sp_sha256 *hash;
  unsigned char *zeros;  /* one cluster of zeroes, hashed for data that read as zeroes */
  unsigned char *meta;   /* one cluster, the metadata's (aligned for O_DIRECT) */
  uint64_t *holes;       /* bit k: the k-th data cluster read as zeroes */
  uint64_t next_g;       /* guest clusters before this one were all handed over */
  uint64_t next_k;       /* data clusters handed over */
  int efd;               /* eventfd: the writer finished some operations */
  pthread_t thread;
  bool running;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sink_op *ops; /* a ring of cap operations */
  uint64_t cap, submitted, taken, done;
  int err; /* errno of the writer's first failure */
  bool stop;
};

/* Lays the image out, writes its metadata and starts the writer.  fd is
 * the empty .part, kept open by the caller until after fsink_close();
 * max_ops bounds the operations in flight (the copy's buffers). */
int fsink_open(struct file_sink *s, int fd, uint64_t vsize, const struct sp_qcow2_map *map,
               const char *backing, uint64_t max_ops, struct sp_err *e);
/* [off, off + len) of the disk, whole clusters (the last one padded):
 * buf's bytes, or zeroes when buf is NULL.  *seq is the operation to wait
 * for before buf may be reused (fsink_done), 0 when there is none. */
int fsink_put(struct file_sink *s, uint64_t off, uint64_t len, const void *buf, uint64_t *seq,
              struct sp_err *e);
/* Operations written so far; -1 (errno in *err) once the writer failed. */
int64_t fsink_done(struct file_sink *s, int *err);
/* Clears the eventfd after poll said it is readable. */
void fsink_ack(struct file_sink *s);
/* Lets the writer write what it was given, and stops it: no buffer it was
 * handed is read after this returns. */
void fsink_stop(struct file_sink *s);
/* Waits for the writer, checks that every data cluster came, makes the
 * image durable and gives its SHA-256. */
int fsink_finish(struct file_sink *s, char hex[SP_SHA256_HEX_LEN + 1], struct sp_err *e);
void fsink_close(struct file_sink *s);

#define FILE_SINK_INIT { .fd = -1, .efd = -1 }

#endif
