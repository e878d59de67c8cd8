/* Where the data goes: the .part image served by a qemu-nbd that libnbd
 * starts through systemd socket activation.  qemu-nbd does the qcow2
 * work (allocation, zero clusters, compression, the backing chain); the
 * copier only sends NBD writes. */
#ifndef SP_COPY_QCOW2_SINK_H
#define SP_COPY_QCOW2_SINK_H

#include <libnbd.h>
#include <stdbool.h>

#include "err.h"

struct sink {
  struct nbd_handle *h;
  int errfd; /* memfd holding qemu-nbd's stderr */
};

#define SINK_INIT { .errfd = -1 }

/* Starts qemu-nbd on image (qcow2; through the compress filter when
 * compress) and connects to it; env is env(1), which sets qemu-nbd's
 * malloc tunables without touching our own environment. */
int sink_open(struct sink *s, const char *env, const char *qemu_nbd, const char *image,
              bool compress, struct sp_err *e);
/* Flushes (qemu-nbd fdatasyncs the image) and ends qemu-nbd, waiting for it. */
int sink_finish(struct sink *s, const char *image, struct sp_err *e);
/* Adds qemu-nbd's own last message to e, when it printed one. */
void sink_explain(const struct sink *s, struct sp_err *e);
void sink_close(struct sink *s);

#endif
