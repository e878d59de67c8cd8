/* libvirt's pull-mode backup job: everything that can be made before the
 * pause is made before it (runtime directory, socket path, scratch files,
 * both XML documents), so that inside the window there is only the one
 * virDomainBackupBegin call. */
#ifndef SP_BACKUP_JOB_H
#define SP_BACKUP_JOB_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "host.h"
#include "nbd_tcp.h"
#include "qemu_conf.h"
#include "xalloc.h"

struct job_disk {
  const char *target;
  bool copy;               /* exported by the job */
  bool bitmap;             /* part of the new checkpoint */
  bool full;               /* exported in full even in an incremental job */
  unsigned long long size;
  char *scratch;           /* pre-made empty qcow2 */
};

struct backup_job {
  struct sp_host *host;    /* where the VM runs: directories and socket live there */
  char *rundir;            /* private: QEMU's socket lives here */
  char *socket;
  char *scratchdir;
  struct job_disk *disks;
  size_t ndisks;
  char *checkpoint;        /* name of the new checkpoint */
  char *incremental;       /* checkpoint the job starts from, NULL: full */
  const struct nbd_tcp *tcp; /* transport = tcp: the server's address; NULL: the socket */
  char *backup_xml, *checkpoint_xml;
  bool reuse_scratch;      /* scratch files made before the pause (local hosts) */
  uid_t uid;               /* QEMU's user and group: they own what the job makes */
  gid_t gid;
  bool begun;
  bool ending;             /* aborted, not yet seen gone */
};

/* Makes the directories (owned by QEMU's user, 0700) and the XML.
 * disks[] must be filled by the caller (target, copy, bitmap, full,
 * size), and tcp set for transport = tcp. */
int backup_job_prepare(struct backup_job *j, struct sp_host *host, const struct sp_qemu_conf *qc,
                       const char *scratch_root, const char *tag, struct sp_err *e);
/* The EMPTY scratch files of a local job, for REUSE_EXTERNAL (a remote
 * job's are made by libvirt): after backup_job_prepare, before the pause. */
int backup_job_make_scratches(struct backup_job *j, struct sp_err *e);
/* Inside the window. */
int backup_job_begin(virDomainPtr dom, struct backup_job *j, struct sp_err *e);
/* Asks libvirt to end the pull job (the NBD exports go away) without
 * waiting for QEMU to tear it down: the point's images are hashed
 * meanwhile. */
int backup_job_abort(virDomainPtr dom, struct backup_job *j, struct sp_err *e);
/* Ends the pull job (aborted first if it was not) and waits until it is
 * gone, so that the next backup of the domain is not refused. */
int backup_job_end(virDomainPtr dom, struct backup_job *j, struct sp_err *e);
/* Removes the runtime and scratch directories and frees. */
void backup_job_free(struct backup_job *j);

/* nbd+unix:///<target>?socket=<socket>, or with tcp
 * nbds://<host>:<port>/<target>?tls-certificates=<client dir> */
SP_XALLOC char *backup_job_uri(const struct backup_job *j, const char *target);

#endif
