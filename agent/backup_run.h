/* One `stillpoint backup DOMAIN` run: everything it holds, and the steps
 * that live outside cmd_backup.c - the copy (backup_copy.c) and the
 * point's files and manifest (backup_finish.c). */
#ifndef SP_BACKUP_RUN_H
#define SP_BACKUP_RUN_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "backup_job.h"
#include "capture.h"
#include "chain.h"
#include "cli.h"
#include "config.h"
#include "freeze.h"
#include "guardian.h"
#include "hypervisor.h"
#include "manifest.h"
#include "nbd_tcp.h"
#include "offline.h"
#include "phases.h"
#include "point_layout.h"
#include "point_write.h"
#include "preflight.h"
#include "rbd_target.h"
#include "task_pool.h"
#include "tunnel.h"
#include "vm_lock.h"
#include "window.h"

/* What a copier's summary line says it wrote. */
struct copy_result {
  unsigned long long bytes_written;
  bool have_bytes;
  pid_t guardian; /* for the "copy" test failpoint */
};

/* Everything one run holds; freed in one place. */
struct run {
  const struct cli *cli;
  const struct sp_log *log;
  bool only_offline;         /* --only-offline: refuse a VM that is not shut off */
  struct sp_config cfg;
  struct hypervisor hv;      /* this machine, or one over SSH */
  struct tunnel tunnel;      /* the remote NBD socket, brought here */
  struct nbd_tcp tcp;        /* or transport = tcp: the job's TLS port */
  char *local_rundir;        /* where the tunnel's local socket lives */
  virDomainPtr dom;
  struct vm_lock lock;
  struct preflight pf;
  struct chain_plan plan;
  char id[SP_POINT_ID_MAX];
  char *domain_dir;         /* target = rbd: the local staging directory */
  struct point_dir pd;
  bool rbd_on;               /* target = rbd:POOL[/NAMESPACE] */
  struct rbd_target rbd;
  struct backup_job job;
  struct guardian guardian;
  bool guardian_up;
  struct freeze fz;
  struct window win;
  struct captured cap;
  struct offline off;        /* a shut-off VM: started paused for the job */
  struct captured cap_before; /* its NVRAM and TPM read before that start */
  char *checkpoint_xml;
  char *inactive_xml;
  struct task *tasks;
  struct copy_result *results;
  size_t ntasks;
  int sigfd;
  struct sp_manifest m;
  struct phases_tail tail;   /* what came after manifest.json (phases.h) */
  double t_start;            /* phases_now() when the run began */
};

/* The copy step: the NBD export reached (tunnel or TLS), one copier per
 * disk with the STILLPOINT_* environment (backup_copy.c). */
int backup_open_transport(struct run *r, struct sp_err *e);
int backup_copy_disks(struct run *r, struct sp_err *e);

/* After the window: domain.xml, checkpoint.xml, NVRAM and TPM written into
 * the .partial point; then, after the copy, each image checked, hashed,
 * the manifest and SHA256SUMS written and the point renamed (backup_finish.c). */
int backup_save_state(struct run *r, struct sp_err *e);
int backup_finish(struct run *r, struct sp_err *e);

#endif
