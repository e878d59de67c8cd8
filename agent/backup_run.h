/* One `stillpoint backup DOMAIN` run: everything it holds, the driver
 * (backup_run.c: run_point, the protocol step by step) and the steps that
 * live in files of their own - the copy (backup_copy.c) and the point's
 * files and manifest (backup_finish.c).  cmd_backup.c parses the
 * arguments and calls run_point. */
#ifndef SP_BACKUP_RUN_H
#define SP_BACKUP_RUN_H

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "backup_job.h"
#include "capture.h"
#include "level_plan.h"
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
#include "remote_tunnel.h"
#include "task_pool.h"
#include "virt.h"
#include "vm_lock.h"
#include "window.h"

/* What a copier's summary line says it wrote. */
struct copy_result {
  unsigned long long bytes_written;
  bool have_bytes;
  char sha256[SP_SHA256_HEX_LEN + 1]; /* the image's, as the copier hashed it; "" if it did not */
  pid_t guardian; /* for the "copy" test failpoint */
};

/* What the run has made that its one failure path must undo or name
 * (backup_run.c's undo()). */
struct run_made {
  bool point;        /* <id>.partial exists: the user is told where */
  bool checkpoint;   /* begin was asked for: job ended, checkpoint deleted */
  bool maybe_point;  /* a Ceph commit's outcome is unknown: the checkpoint stays */
};

/* Everything one run holds; freed in one place (run_free). */
struct run {
  const struct cli *cli;
  const struct sp_log *log;
  bool only_offline;         /* --only-offline: refuse a VM that is not shut off */
  struct sp_config cfg;
  struct hypervisor hv;      /* this machine, or one over SSH */
  struct remote_tunnel tunnel; /* the remote NBD socket, brought here */
  struct nbd_tcp tcp;        /* or transport = tcp: the job's TLS port */
  char *local_rundir;        /* where the tunnel's local socket lives */
  virDomainPtr dom;
  bool paused_on_error;       /* the VM was paused on an I/O error during the copy */
  bool watch_stopped;         /* the copy's watch (copy_watch) stopped the copiers */
  struct virt_link link;     /* hv.conn and dom, connected again after a libvirtd restart */
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
  double t_guardian;         /* phases_now() when the guardian was started */
  struct run_made made;
};

/* Every descriptor and pid of a run "none", so run_free can free any run. */
#define RUN_INIT                                                                      \
  { .sigfd = -1, .pd = POINT_DIR_INIT, .lock = VM_LOCK_INIT,                          \
    .tunnel = REMOTE_TUNNEL_INIT, .tcp = NBD_TCP_INIT, .guardian = GUARDIAN_INIT }

/* One point of the VM called name (docs/design.md, "The backup point
 * protocol"); r->cfg, cli, log, rbd_on and only_offline set by the caller.
 * On failure e says why and what the run made is undone or named. */
int run_point(struct run *r, const char *name, struct sp_level_req level_req,
              struct sp_err *e);
void run_free(struct run *r);

/* run_timeout_s: -1 with e naming the key once the run (from its start,
 * preflight included) has taken longer than the policy allows, saying
 * what it was doing (step: "while copying"); 0 within it or with no
 * limit (0).  Asked while the copiers run and between the steps: a step
 * blocked inside libvirt or Ceph is bounded by its own timeouts. */
int backup_within_deadline(const struct run *r, const char *step, struct sp_err *e);

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
