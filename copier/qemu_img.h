/* The two qemu-img calls: what the parent image is, and creating the
 * output.  The copier never writes qcow2 structures itself. */
#ifndef SP_COPY_QEMU_IMG_H
#define SP_COPY_QEMU_IMG_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct image_info {
  char format[32];
  uint64_t virtual_size;
};

/* qemu-img info of path with its whole backing chain, so a parent whose
 * own backing file is gone is refused before anything is written. */
int qemu_img_info(const char *qemu_img, const char *path, struct image_info *info,
                  struct sp_err *e);

/* qemu-img create -f qcow2 of size bytes, 64 KiB clusters; an overlay of
 * backing (a path relative to the image's directory, -F qcow2) when
 * backing is not NULL; zstd compression type when compress. */
int qemu_img_create(const char *qemu_img, const char *path, uint64_t size, const char *backing,
                    bool compress, struct sp_err *e);

/* qemu-img resize --shrink: see the compress case in main.c. */
int qemu_img_shrink(const char *qemu_img, const char *path, uint64_t size, struct sp_err *e);

#endif
