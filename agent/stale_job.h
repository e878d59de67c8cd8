/* What a stillpoint run that no longer exists left on a VM: its backup job
 * (libvirt keeps a pull job until its client ends it), that job's new
 * checkpoint, its run and scratch directories, and checkpoints of points
 * that stayed <id>.partial.  Both coordinator and guardian dead (OOM, a
 * crashed host, kill of both) is the case the guardian cannot cover. */
#ifndef SP_STALE_JOB_H
#define SP_STALE_JOB_H

#include <libvirt/libvirt.h>

#include "host.h"
#include "log.h"
#include "strv.h"

/* Called with the VM's lock held, so no live stillpoint run on this
 * machine owns what it finds.  A job is ours when its XML names a path
 * with our tag, "<uuid>-<point id>" (backup_job_prepare); anything else
 * (a migration, someone's own backup) is left alone and preflight
 * refuses it as before.  Says what it cleaned; never fails the run. */
void stale_job_clean(virDomainPtr dom, const char *uuid, const char *domain_dir,
                     struct sp_host *host, const char *scratch_root, const struct sp_log *log);

/* Ceph targets (called under the VM's lock in the pool): deletes the
 * checkpoint of each point id in ids (ones the pool's index shows were
 * never committed) that libvirt still has; says what it deleted. */
void stale_checkpoints_drop(virDomainPtr dom, const struct sp_strv *ids,
                            const struct sp_log *log);

#endif
