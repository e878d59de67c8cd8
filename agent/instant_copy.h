/* The moving parts of an instant restore (docs/design.md, "Instant
 * restore"):
 *   serve    the point's chain of one disk, read-only, by qemu-nbd on a unix
 *            socket in /run/stillpoint/instant/<uuid>/ that only QEMU's user
 *            may use: QEMU reads the point through it and never opens (so
 *            libvirt never relabels) a file of the point;
 *   overlay  a qcow2 in the destination directory backed by that export,
 *            where the running VM writes;
 *   copy     one virDomainBlockCopy per disk to its final image (a full
 *            copy, VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB as libvirt requires
 *            for a persistent domain), with progress and an ETA, each
 *            pivoted once it is ready;
 *   finish   the persistent definition on the final images, the servers
 *            stopped, overlays and the run directory removed.
 * A copy that fails leaves the VM running on its overlay; instant_copy()
 * is then simply called again (restore --instant --resume). */
#ifndef SP_INSTANT_COPY_H
#define SP_INSTANT_COPY_H

#include <libvirt/libvirt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "log.h"
#include "own_dirs.h"
#include "point_chain.h"

#define SP_INSTANT_RUN_ROOT SP_INSTANT_DIR

struct instant_disk {
  char *target;
  char *dir;        /* the destination directory (held as dir_fd) */
  int dir_fd;
  char *overlay;    /* file name in dir */
  char *final;      /* file name in dir */
  const char *format; /* of the final image: qcow2 | raw */
  /* filled by instant_copy() */
  bool pivoted;
  char *error;      /* why its copy stopped, NULL when it did not */
};

/* /run/stillpoint/instant/<uuid> */
int instant_run_dir(const char *uuid, char out[PATH_MAX], struct sp_err *e);

/* Serves chain c read-only on <run>/<target>.sock (pid in <target>.pid),
 * the socket owned by uid:gid, 0600.  *sock: its path (malloc'd). */
int instant_serve(const struct sp_disk_chain *c, const char *run, uid_t uid, gid_t gid,
                  char **sock, struct sp_err *e);
/* Stops the server of target (only a qemu-nbd serving that socket) and
 * removes its socket and pid file.  Missing is fine. */
void instant_unserve(const char *run, const char *target);

/* dir_fd/name: a new qcow2 of vsize bytes backed by the raw NBD export on
 * sock, 0600; refuses to replace anything. */
int instant_overlay_create(int dir_fd, const char *dir, const char *name, const char *sock,
                           uint64_t vsize, struct sp_err *e);

/* Copies every disk not yet pivoted and pivots it; progress and an ETA on
 * stderr (JSON lines with json).  bandwidth: bytes/s per disk, 0: no
 * limit.  Returns -1 when a disk's copy stopped (d[i].error says why);
 * the others are still copied and pivoted. */
int instant_copy(virDomainPtr dom, struct instant_disk *d, size_t n, unsigned long long bandwidth,
                 bool json, const struct sp_log *log, struct sp_err *e);

/* After every disk pivoted: the persistent definition on the final
 * images, servers stopped, overlays and run removed. */
int instant_finish(virConnectPtr conn, virDomainPtr dom, struct instant_disk *d, size_t n,
                   const char *run, const struct sp_log *log, struct sp_err *e);

void instant_disks_free(struct instant_disk *d, size_t n);

#endif
