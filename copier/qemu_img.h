/* The two qemu-img calls: what the parent image is, and creating the
 * output.  The copier never writes qcow2 structures itself. */
#ifndef SP_COPY_QEMU_IMG_H
#define SP_COPY_QEMU_IMG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct image_info {
  char format[32];
  uint64_t virtual_size;
};

/* qemu-img info of path with its whole backing chain, so a parent whose
 * own backing file is gone is refused before the image is named.  Started
 * by qemu_img_info_start() and read by qemu_img_info_finish(), so that it
 * runs beside the export's handshake and the output's creation (each a
 * process start: docs/facts.md, "Timings"); qemu_img_info_stop() ends and
 * reaps one not finished (a failure meanwhile), and does nothing for one
 * finished or never started. */
struct image_info_run {
  pid_t pid;       /* -1: none running */
  int out_fd, err_fd;
};
#define IMAGE_INFO_RUN_INIT { .pid = -1, .out_fd = -1, .err_fd = -1 }
int qemu_img_info_start(const char *qemu_img, const char *path, struct image_info_run *run,
                        struct sp_err *e);
int qemu_img_info_finish(struct image_info_run *run, const char *path, struct image_info *info,
                         struct sp_err *e);
void qemu_img_info_stop(struct image_info_run *run);

/* qemu-img create -f qcow2 of size bytes, 64 KiB clusters; an overlay of
 * backing (a path relative to the image's directory, -F qcow2) when
 * backing is not NULL; zstd compression type when compress. */
int qemu_img_create(const char *qemu_img, const char *path, uint64_t size, const char *backing,
                    bool compress, struct sp_err *e);

/* qemu-img resize --shrink: see the compress case in main.c. */
int qemu_img_shrink(const char *qemu_img, const char *path, uint64_t size, struct sp_err *e);

#endif
