#include "backup_job.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "own_dirs.h"
#include "virt.h"
#include "xalloc.h"


static char *xml_escape(const char *s)
{
  size_t n = 1;
  for (const char *p = s; *p; p++)
    n += strchr("<>&'\"", *p) ? 6 : 1;
  char *out = sp_xmalloc(n), *o = out;
  for (const char *p = s; *p; p++) {
    const char *rep = *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '&' ? "&amp;"
                      : *p == '\'' ? "&apos;" : *p == '"' ? "&quot;" : NULL;
    if (rep)
      o = stpcpy(o, rep);
    else
      *o++ = *p;
  }
  *o = '\0';
  return out;
}

/* Appends printf output to a growing string. */
static __attribute__((format(printf, 2, 3))) void cat(char **s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *add = sp_xvasprintf(fmt, ap);
  va_end(ap);
  char *joined = sp_xasprintf("%s%s", *s, add);
  free(add);
  free(*s);
  *s = joined;
}

static void build_xml(struct backup_job *j)
{
  _cleanup_free_ char *sock = xml_escape(j->socket), *cp = xml_escape(j->checkpoint);
  _cleanup_free_ char *inc = j->incremental ? xml_escape(j->incremental) : NULL;
  char *b = sp_xstrdup(""), *c = sp_xstrdup("");
  cat(&b, "<domainbackup mode='pull'>");
  if (inc)
    cat(&b, "<incremental>%s</incremental>", inc);
  /* TLS on TCP, always: the export is the whole disk, and QEMU (with
   * libvirt's default backup_tls_x509_verify = 1) serves only clients
   * with a certificate of the same CA. */
  if (j->tcp) {
    _cleanup_free_ char *host = xml_escape(j->tcp->host);
    cat(&b, "<server transport='tcp' tls='yes' name='%s' port='%d'/><disks>", host, j->tcp->port);
  } else {
    cat(&b, "<server transport='unix' socket='%s'/><disks>", sock);
  }
  cat(&c, "<domaincheckpoint><name>%s</name><description>stillpoint point</description><disks>",
      cp);
  for (size_t i = 0; i < j->ndisks; i++) {
    const struct job_disk *d = &j->disks[i];
    _cleanup_free_ char *t = xml_escape(d->target);
    _cleanup_free_ char *s = d->scratch ? xml_escape(d->scratch) : NULL;
    if (d->copy)
      cat(&b, "<disk name='%s' backup='yes' type='file'%s><scratch file='%s'/></disk>", t,
          inc && d->full ? " backupmode='full'" : "", s);
    else
      cat(&b, "<disk name='%s' backup='no'/>", t);
    cat(&c, "<disk name='%s' checkpoint='%s'/>", t, d->bitmap ? "bitmap" : "no");
  }
  cat(&b, "</disks></domainbackup>");
  cat(&c, "</disks></domaincheckpoint>");
  j->backup_xml = b;
  j->checkpoint_xml = c;
}

/* The stderr a failed qemu-img left in its memfd, as one line. */
static void child_message(int fd, char *buf, size_t size)
{
  ssize_t n = pread(fd, buf, size - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
}

/* An EMPTY qcow2 of exactly each copied disk's size: libvirt reuses them
 * (REUSE_EXTERNAL), which keeps their creation out of the pause.  One
 * qemu-img create per disk, all started before any is waited for: each
 * is mostly process start and fsyncs (60-70 ms here), so a VM with
 * several disks pays for one, not for each.  Every child started is
 * waited for, also after a failure. */
static int make_scratches(struct backup_job *j, struct sp_err *e)
{
  uid_t uid = j->uid;
  gid_t gid = j->gid;
  size_t n = j->ndisks;
  _cleanup_free_ pid_t *pid = sp_xcalloc(n ? n : 1, sizeof *pid);
  _cleanup_free_ int *errfd = sp_xcalloc(n ? n : 1, sizeof *errfd);
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    pid[i] = errfd[i] = -1;
  for (size_t i = 0; i < n && rc == 0; i++) {
    struct job_disk *d = &j->disks[i];
    if (!d->copy)
      continue;
    char size[32];
    snprintf(size, sizeof size, "%llu", d->size);
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", d->scratch, size, NULL };
    if ((errfd[i] = memfd_create("qemu-img-stderr", MFD_CLOEXEC)) < 0)
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "memfd_create");
    else if ((pid[i] = sp_spawn(argv, NULL, -1, errfd[i], e)) < 0)
      rc = -1;
  }
  for (size_t i = 0; i < n; i++) {
    int ws = 0;
    while (pid[i] > 0 && waitpid(pid[i], &ws, 0) < 0 && errno == EINTR)
      ;
    const char *scratch = j->disks[i].scratch;
    char msg[512];
    /* After a failure only the first one is told. */
    bool skip = pid[i] <= 0 || rc < 0;
    if (!skip && sp_exit_status(ws) != 0) {
      child_message(errfd[i], msg, sizeof msg);
      rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-img create %s failed: %s", scratch, msg);
    } else if (!skip && (chmod(scratch, 0600) < 0 || chown(scratch, uid, gid) < 0)) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot give %s to QEMU's user", scratch);
    }
    if (errfd[i] >= 0)
      close(errfd[i]);
  }
  return rc;
}

int backup_job_prepare(struct backup_job *j, struct sp_host *host, const struct sp_qemu_conf *qc,
                       const char *scratch_root, const char *tag, struct sp_err *e)
{
  j->host = host;
  if (host->ops->ids(host, qc->user, qc->group, &j->uid, &j->gid, e) < 0)
    return -1;
  /* Parents must be searchable by QEMU's user (preflight has checked an
   * administrator's scratch_dir); the job's own dirs are not. */
  if (sp_dirs_prepare(host, SP_RUN_DIR, 0711, e) < 0 ||
      sp_dirs_prepare(host, scratch_root, 0711, e) < 0)
    return -1;
  j->rundir = sp_xasprintf("%s/%s", SP_RUN_DIR, tag);
  j->socket = sp_xasprintf("%s/nbd.sock", j->rundir);
  j->scratchdir = sp_xasprintf("%s/%s", scratch_root, tag);
  if (strlen(j->socket) >= 108)
    return sp_err_set(e, SP_EXIT_FAILED, "socket path %s is too long for a unix socket",
                      j->socket);
  /* Private: only QEMU's user (and root) may enter. */
  if (host->ops->mkdir_owned(host, j->rundir, 0700, j->uid, j->gid, e) < 0 ||
      host->ops->mkdir_owned(host, j->scratchdir, 0700, j->uid, j->gid, e) < 0)
    return -1;
  /* On this machine the scratch files are made before the pause
   * (backup_job_make_scratches); on a remote one libvirt makes them. */
  j->reuse_scratch = !host->remote;
  for (size_t i = 0; i < j->ndisks; i++)
    if (j->disks[i].copy)
      j->disks[i].scratch = sp_xasprintf("%s/%s.scratch", j->scratchdir, j->disks[i].target);
  build_xml(j);
  return 0;
}

int backup_job_make_scratches(struct backup_job *j, struct sp_err *e)
{
  return j->reuse_scratch ? make_scratches(j, e) : 0;
}

int backup_job_begin(virDomainPtr dom, struct backup_job *j, struct sp_err *e)
{
  const char *name = virDomainGetName(dom);
  if (virDomainBackupBegin(dom, j->backup_xml, j->checkpoint_xml,
                           j->reuse_scratch ? VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL : 0) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "libvirt could not start the backup job of %s: %s",
                      name, virt_errmsg());
  j->begun = true;
  return 0;
}

int backup_job_abort(virDomainPtr dom, struct backup_job *j, struct sp_err *e)
{
  if (!j->begun)
    return 0;
  const char *name = virDomainGetName(dom);
  j->begun = false;
  if (virDomainAbortJob(dom) < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot end the backup job of %s: %s (end it with "
                      "`virsh domjobabort %s`)", name, virt_errmsg(), name);
  j->ending = true;
  return 0;
}

int backup_job_end(virDomainPtr dom, struct backup_job *j, struct sp_err *e)
{
  if (backup_job_abort(dom, j, e) < 0)
    return -1;
  if (!j->ending)
    return 0; /* never begun, or already waited for */
  const char *name = virDomainGetName(dom);
  j->ending = false;
  /* The abort returns before libvirt has torn the job down (QEMU cancels
   * the block jobs asynchronously): a backup started right after would be
   * refused as "another job", so wait until the job is gone. */
  virDomainJobInfo ji;
  for (int i = 0; i < 1500; i++) {
    if (virDomainGetJobInfo(dom, &ji) < 0 || ji.type == VIR_DOMAIN_JOB_NONE)
      return 0;
    struct timespec t = { 0, 20 * 1000 * 1000 };
    nanosleep(&t, NULL);
  }
  return sp_err_set(e, SP_EXIT_FAILED, "the backup job of %s did not end within 30 s of its "
                    "abort (end it with `virsh domjobabort %s`)", name, name);
}

void backup_job_free(struct backup_job *j)
{
  struct sp_err ignored = { 0 };
  if (j->host && j->rundir)
    j->host->ops->rm_rf(j->host, j->rundir, &ignored);
  if (j->host && j->scratchdir)
    j->host->ops->rm_rf(j->host, j->scratchdir, &ignored);
  for (size_t i = 0; i < j->ndisks; i++)
    free(j->disks[i].scratch);
  free(j->disks);
  free(j->rundir);
  free(j->socket);
  free(j->scratchdir);
  free(j->checkpoint);
  free(j->incremental);
  free(j->backup_xml);
  free(j->checkpoint_xml);
  memset(j, 0, sizeof *j);
}

char *backup_job_uri(const struct backup_job *j, const char *target)
{
  if (j->tcp)
    return nbd_tcp_uri(j->tcp, target);
  return sp_xasprintf("nbd+unix:///%s?socket=%s", target, j->socket);
}
