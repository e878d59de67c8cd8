/* A point's disk, read-only, its file systems mounted under a directory -
 * without the kernel's nbd module:
 *   qemu-nbd   serves the disk read-only on a private unix socket: a directory
 *              point's validated chain, every image pinned to its driver (no
 *              format probing, no backing file taken from an image header),
 *              or a Ceph point's RBD snapshot through QEMU's rbd driver,
 *              pinned to raw
 *   nbdfuse    presents the export as a file (run/fuse/disk)
 *   loop       a read-only loop device on that file with partition scanning;
 *              on a kernel without partition table support (this machine's),
 *              one read-only loop device per partition at its offset, the
 *              table read by libblkid
 *   mount      each file system read-only, nosuid, nodev, noexec: under
 *              dir/<n> for partition n, or on dir itself for a whole-disk one.
 * Device nodes come from devtmpfs; where one does not appear (no devtmpfs,
 * udev late) a private node is made in the run directory.  Everything is
 * recorded in the mount state (mount_state.h) as it is set up. */
#ifndef SP_DISK_MOUNT_H
#define SP_DISK_MOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "log.h"
#include "mount_state.h"

/* What qemu-nbd serves: a QEMU file name (json: or rbd:), the format to
 * pin it to when the name does not (NULL for a json: that does), and the
 * descriptors the name refers to, passed as 3, 4, ... */
struct disk_source {
  const char *spec;
  const char *format;
  const int *fds;
  size_t nfds;
};

/* Sets everything up for src on st->dir, with its private directory run
 * (made here, 0700).  st has dir, point and disk.  A partition that holds
 * no mountable file system is logged as a warning and left out.  On
 * failure everything set up is taken down again. */
int disk_mount(struct mount_state *st, const char *run, const struct disk_source *src,
               const struct sp_log *log, struct sp_err *e);

/* Takes down whatever st records, in order: mounts, loop devices, the FUSE
 * file, nbdfuse, qemu-nbd, run.  Missing pieces are fine.  A busy mount
 * stops it (nothing below is touched, the state stays) with the fix in e. */
int disk_unmount(const struct mount_state *st, const char *run, struct sp_err *e);

/* Whether everything st records is still in place. */
bool disk_mount_alive(const struct mount_state *st, const char *run);

#endif
