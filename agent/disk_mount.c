#include "disk_mount.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

enum {
  READY_MS = 15000,   /* nbdfuse: until its pid file says it serves */
  STOP_MS = 5000,     /* a process: SIGTERM, then SIGKILL */
  NODE_MS = 2000,     /* a device node to appear */
  RELEASE_MS = 5000,  /* a loop device or the FUSE mount to let go */
  LOOP_TRIES = 16,    /* free loop devices taken by others meanwhile */
};

static const unsigned long MOUNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

/* mkdir with the mode set after it, whatever the umask. */
static int private_dir(const char *path)
{
  if (mkdir(path, 0700) < 0)
    return -1;
  return chmod(path, 0700);
}

static void sleep_ms(long ms)
{
  nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 }, NULL);
}

/* ---- processes ------------------------------------------------------------- */

/* Start time (field 22) and state (field 3) of /proc/<pid>/stat. */
static bool proc_stat(pid_t pid, unsigned long long *start, char *state)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (n <= 0)
    return false;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold anything */
  /* state is field 3; fields 4 to 21 skipped; start time is field 22 */
  if (!p || sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                          "%*s %*s %*s %llu", state, start) != 2)
    return false;
  return true;
}

/* The process recorded, not another that got its pid since. */
static bool proc_is(const struct proc_ref *p)
{
  unsigned long long start;
  char state;
  if (p->pid <= 1 || !proc_stat(p->pid, &start, &state))
    return false;
  if (state == 'Z') { /* ours and ended: reap it */
    waitpid(p->pid, NULL, WNOHANG);
    return false;
  }
  return start == p->start;
}

static int proc_ref_of(pid_t pid, struct proc_ref *p)
{
  char state;
  p->pid = pid;
  return proc_stat(pid, &p->start, &state) ? 0 : -1;
}

static void proc_stop(const struct proc_ref *p)
{
  if (!proc_is(p))
    return;
  kill(p->pid, SIGTERM);
  for (int waited = 0; proc_is(p); waited += 20) {
    if (waited == STOP_MS)
      kill(p->pid, SIGKILL);
    if (waited > STOP_MS + 2000)
      break;
    waitpid(p->pid, NULL, WNOHANG);
    sleep_ms(20);
  }
}

/* ---- qemu-nbd and nbdfuse ----------------------------------------------------- */

static int read_pid_file(const char *path, pid_t *pid)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  struct sp_err ignored = { 0 };
  long v;
  if (sp_read_file(path, 64, &text, &len, &ignored) < 0 || sscanf(text, "%ld", &v) != 1 ||
      v <= 1 || v > 4194304)
    return -1;
  *pid = (pid_t)v;
  return 0;
}

static int start_qemu_nbd(struct mount_state *st, const char *run,
                          const struct disk_source *src, const struct sp_log *log,
                          struct sp_err *e)
{
  char sock[PATH_MAX], pidf[PATH_MAX], sockopt[PATH_MAX + 16], pidopt[PATH_MAX + 16];
  char fmtopt[64];
  snprintf(sock, sizeof sock, "%s/nbd.sock", run);
  snprintf(pidf, sizeof pidf, "%s/qemu-nbd.pid", run);
  snprintf(sockopt, sizeof sockopt, "--socket=%s", sock);
  snprintf(pidopt, sizeof pidopt, "--pid-file=%s", pidf);
  snprintf(fmtopt, sizeof fmtopt, "--format=%s", src->format ? src->format : "");
  /* --fork returns once the server listens; --persistent: nbdfuse's
   * connections may come and go.  A source whose name does not pin its
   * format gets one: QEMU never probes what a guest wrote. */
  char *argv[] = { "qemu-nbd", "--fork", "--persistent", "--read-only", "--shared=8",
                   sockopt, pidopt, src->format ? fmtopt : (char *)src->spec,
                   src->format ? (char *)src->spec : NULL, NULL };
  struct sp_run_result r;
  if (sp_run_fds(argv, src->fds, src->nfds, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  /* qemu-nbd's parent exits 1 whenever its child wrote anything to stderr
   * before detaching, and librados writes warnings there (an admin socket
   * in use, no keyring in the default places): the server left running
   * is what counts, and what it said is passed on. */
  int rc = 0;
  pid_t pid;
  bool alive = read_pid_file(pidf, &pid) == 0 && proc_ref_of(pid, &st->qemu_nbd) == 0;
  if (!alive && r.status != 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-nbd cannot serve disk %s: %s", st->disk,
                    r.err ? r.err : "");
  else if (!alive)
    rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-nbd started but left no live pid in %s", pidf);
  else if (r.status != 0 && r.err && *r.err)
    sp_warn(log, "qemu-nbd serves disk %s, and said: %s", st->disk, r.err);
  sp_run_result_free(&r);
  return rc;
}

static void log_tail(const char *path, struct sp_err *e)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  struct sp_err ignored = { 0 };
  if (sp_read_file(path, 1 << 16, &text, &len, &ignored) < 0 || !len)
    return;
  while (len && text[len - 1] == '\n')
    text[--len] = '\0';
  size_t n = strlen(e->msg);
  snprintf(e->msg + n, sizeof e->msg - n, ": %s", len > 300 ? text + len - 300 : text);
}

static int start_nbdfuse(struct mount_state *st, const char *run, struct sp_err *e)
{
  char fuse[PATH_MAX], file[PATH_MAX + 8], sock[PATH_MAX], pidf[PATH_MAX], logf[PATH_MAX];
  snprintf(fuse, sizeof fuse, "%s/fuse", run);
  snprintf(file, sizeof file, "%s/disk", fuse);
  snprintf(sock, sizeof sock, "%s/nbd.sock", run);
  snprintf(pidf, sizeof pidf, "%s/nbdfuse.pid", run);
  snprintf(logf, sizeof logf, "%s/nbdfuse.log", run);
  if (private_dir(fuse) < 0 && errno != EEXIST)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", fuse);
  _cleanup_close_ int log = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", logf);
  char *argv[] = { "nbdfuse", "-r", "-P", pidf, file, "--unix", sock, NULL };
  pid_t pid = sp_spawn_session(argv, NULL, log, log, e);
  if (pid < 0)
    return -1;
  /* Recorded at once: a failure below still takes it down. */
  if (proc_ref_of(pid, &st->nbdfuse) < 0)
    st->nbdfuse.pid = pid;
  for (int waited = 0; waited < READY_MS; waited += 20) {
    pid_t ready;
    if (read_pid_file(pidf, &ready) == 0)
      return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      st->nbdfuse.pid = 0;
      sp_err_set(e, SP_EXIT_FAILED, "nbdfuse could not present the disk as a file");
      log_tail(logf, e);
      return -1;
    }
    sleep_ms(20);
  }
  sp_err_set(e, SP_EXIT_FAILED, "nbdfuse did not become ready within %d s", READY_MS / 1000);
  log_tail(logf, e);
  return -1;
}

/* ---- loop devices and device nodes ------------------------------------------ */

/* A read-only loop device on fd from offset for size bytes (0: to the
 * end).  Its descriptor is returned in *lfd and must stay open until the
 * device is in use: it clears itself (autoclear) when the last user goes. */
static int loop_attach(int fd, unsigned long long offset, unsigned long long size,
                       bool partscan, char dev[32], int *lfd, struct sp_err *e)
{
  _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    return sp_err_sys(e, SP_EXIT_PREFLIGHT, errno, "/dev/loop-control (loop devices are "
                      "needed to mount a point)");
  for (int tries = 0; tries < LOOP_TRIES; tries++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "no free loop device");
    snprintf(dev, 32, "/dev/loop%d", n);
    int l = -1;
    for (int waited = 0; (l = open(dev, O_RDONLY | O_CLOEXEC)) < 0 && errno == ENOENT &&
                         waited < NODE_MS; waited += 20)
      sleep_ms(20);
    if (l < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", dev);
    struct loop_config cfg = { .fd = (uint32_t)fd };
    cfg.info.lo_offset = offset;
    cfg.info.lo_sizelimit = size;
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR |
                        (partscan ? LO_FLAGS_PARTSCAN : 0);
    snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "stillpoint");
    if (ioctl(l, LOOP_CONFIGURE, &cfg) == 0) {
      *lfd = l;
      return 0;
    }
    int err = errno;
    close(l);
    if (err != EBUSY) /* EBUSY: another process took it first */
      return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot attach %s", dev);
  }
  return sp_err_set(e, SP_EXIT_FAILED, "no loop device could be attached after %d tries",
                    LOOP_TRIES);
}

/* A block device node for dev_t d: the devtmpfs one (/dev/<name>) once it
 * is there, else one of our own in run/dev. */
static int device_node(const char *name, dev_t d, const char *run, char node[PATH_MAX],
                       struct sp_err *e)
{
  snprintf(node, PATH_MAX, "/dev/%s", name);
  for (int waited = 0; waited < NODE_MS; waited += 20) {
    struct stat st;
    if (stat(node, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == d)
      return 0;
    sleep_ms(20);
  }
  char dir[PATH_MAX / 2];
  snprintf(dir, sizeof dir, "%s/dev", run);
  snprintf(node, PATH_MAX, "%s/%s", dir, name);
  if ((private_dir(dir) < 0 && errno != EEXIST) || mknod(node, S_IFBLK | 0600, d) < 0 ||
      chmod(node, 0600) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "no device node for %s appeared, and "
                      "making %s failed", name, node);
  return 0;
}

/* dev_t of /sys/block/<disk>/<part>/dev, false when there is no such. */
static bool sys_dev(const char *disk, const char *part, dev_t *d)
{
  char path[PATH_MAX], buf[32];
  snprintf(path, sizeof path, "/sys/block/%s/%s%sdev", disk, part ? part : "", part ? "/" : "");
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  unsigned ma, mi;
  if (n <= 0)
    return false;
  buf[n] = '\0';
  if (sscanf(buf, "%u:%u", &ma, &mi) != 2)
    return false;
  *d = makedev(ma, mi);
  return true;
}

static bool loop_backs(const char *dev, const char *file)
{
  char path[PATH_MAX], buf[PATH_MAX];
  snprintf(path, sizeof path, "/sys/block/%s/loop/backing_file", dev + 5);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (n <= 0)
    return false;
  buf[n] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  return strcmp(buf, file) == 0;
}

/* ---- file systems ------------------------------------------------------------- */

struct part {
  int num;                     /* 0: the whole disk */
  unsigned long long start, size; /* bytes */
};

/* The partitions libblkid finds on the whole disk (extended ones left out);
 * none: a whole-disk file system, or nothing. */
static int partitions(const char *dev, struct part **out, size_t *n, struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  blkid_probe pr = blkid_new_probe_from_filename(dev);
  if (!pr)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "libblkid cannot read %s", dev);
  blkid_probe_enable_partitions(pr, 1);
  blkid_partlist ls = blkid_probe_get_partitions(pr);
  int np = ls ? blkid_partlist_numof_partitions(ls) : 0;
  if (np > 0)
    *out = sp_xcalloc((size_t)np, sizeof **out);
  for (int i = 0; i < np; i++) {
    blkid_partition p = blkid_partlist_get_partition(ls, i);
    if (!p || blkid_partition_is_extended(p))
      continue;
    (*out)[(*n)++] = (struct part){ .num = blkid_partition_get_partno(p),
                                    .start = (unsigned long long)blkid_partition_get_start(p) * 512,
                                    .size = (unsigned long long)blkid_partition_get_size(p) * 512 };
  }
  blkid_free_probe(pr);
  return 0;
}

/* The file system type on node, or why there is none to mount. */
static int fs_type(const char *node, char type[32], char why[128])
{
  type[0] = why[0] = '\0';
  blkid_probe pr = blkid_new_probe_from_filename(node);
  if (!pr) {
    snprintf(why, 128, "unreadable");
    return -1;
  }
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
  const char *t = NULL, *usage = NULL;
  int rc = blkid_do_safeprobe(pr);
  if (rc == 0) {
    blkid_probe_lookup_value(pr, "TYPE", &t, NULL);
    blkid_probe_lookup_value(pr, "USAGE", &usage, NULL);
  }
  if (rc != 0 || !t)
    snprintf(why, 128, "no file system found");
  else if (!usage || strcmp(usage, "filesystem") != 0)
    snprintf(why, 128, "%s (%s), not a file system", t, usage ? usage : "?");
  else
    snprintf(type, 32, "%s", t);
  blkid_free_probe(pr);
  return type[0] ? 0 : -1;
}

/* Mounts node read-only; a file system whose journal needs a replay
 * cannot replay it on a read-only device: it is mounted without (its
 * last transactions not shown), and said so. */
static int mount_fs(const char *node, const char *target, const char *type, bool *no_replay,
                    struct sp_err *e)
{
  *no_replay = false;
  if (mount(node, target, type, MOUNT_FLAGS, NULL) == 0)
    return 0;
  int err = errno;
  const char *skip = strncmp(type, "ext", 3) == 0   ? "noload"
                     : strcmp(type, "xfs") == 0     ? "norecovery"
                     : strcmp(type, "btrfs") == 0   ? "nologreplay"
                                                    : NULL;
  if (skip && mount(node, target, type, MOUNT_FLAGS, skip) == 0) {
    *no_replay = true;
    return 0;
  }
  if (err == ENODEV)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: this kernel has no %s driver", node, type);
  return sp_err_sys(e, SP_EXIT_FAILED, err, "mounting %s (%s) on %s", node, type, target);
}

/* Mounts one partition (or the whole disk, num 0) from node. */
static int mount_one(struct mount_state *st, const char *run, const char *node, int num,
                     const struct sp_log *log, struct sp_err *e)
{
  char type[32], why[128], target[PATH_MAX];
  if (fs_type(node, type, why) < 0) {
    if (num)
      sp_warn(log, "partition %d of disk %s not mounted: %s", num, st->disk, why);
    else
      sp_warn(log, "disk %s not mounted: %s", st->disk, why);
    return 0;
  }
  struct mount_entry m = { .source = (char *)node, .target = target, .type = type,
                           .partition = num };
  if (num) {
    snprintf(target, sizeof target, "%s/%d", st->dir, num);
    if (private_dir(target) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", target);
    m.created = true;
  } else {
    snprintf(target, sizeof target, "%s", st->dir);
  }
  struct sp_err me = { 0 };
  if (mount_fs(node, target, type, &m.no_replay, &me) < 0) {
    if (m.created)
      rmdir(target);
    sp_warn(log, "%s", me.msg);
    return 0;
  }
  if (m.no_replay)
    sp_warn(log, "%s (%s) mounted without replaying its journal: the point was taken without "
            "a freeze, its last writes may be missing", target, type);
  if (mount_state_add_mount(st, &m, e) < 0 || mount_state_save(st, run, e) < 0)
    return -1;
  return 0;
}

static int mount_disk(struct mount_state *st, const char *run, const struct sp_log *log,
                      struct sp_err *e)
{
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/fuse/disk", run);
  _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", file);
  int lfds[64], nl = 0, rc = 0;
  char dev[32];
  if (loop_attach(fd, 0, 0, true, dev, &lfds[nl], e) < 0)
    return -1;
  nl++;
  if (mount_state_add_loop(st, dev, 0, 0, e) < 0 || mount_state_save(st, run, e) < 0)
    rc = -1;
  _cleanup_free_ struct part *parts = NULL;
  size_t np = 0;
  if (rc == 0)
    rc = partitions(dev, &parts, &np, e);
  if (rc == 0 && np == 0)
    rc = mount_one(st, run, dev, 0, log, e);
  for (size_t i = 0; rc == 0 && i < np; i++) {
    char pname[48], node[PATH_MAX];
    dev_t d;
    snprintf(pname, sizeof pname, "%sp%d", dev + 5, parts[i].num);
    if (sys_dev(dev + 5, pname, &d)) {
      /* The kernel's own partition device. */
      rc = device_node(pname, d, run, node, e);
    } else {
      /* No partition table support in this kernel: a loop device of the
       * partition's own. */
      char pdev[32];
      if (nl == (int)(sizeof lfds / sizeof lfds[0])) {
        sp_warn(log, "disk %s: more than %d partitions, the rest not mounted", st->disk, nl - 1);
        break;
      }
      rc = loop_attach(fd, parts[i].start, parts[i].size, false, pdev, &lfds[nl], e);
      if (rc == 0) {
        nl++;
        rc = mount_state_add_loop(st, pdev, parts[i].start, parts[i].size, e);
      }
      if (rc == 0)
        rc = mount_state_save(st, run, e);
      snprintf(node, sizeof node, "%s", pdev);
    }
    if (rc == 0)
      rc = mount_one(st, run, node, parts[i].num, log, e);
  }
  /* The mounts hold what they use now; unused loop devices clear themselves. */
  for (int i = 0; i < nl; i++)
    close(lfds[i]);
  if (rc == 0 && st->nmounts == 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "disk %s of %s holds no file system that could be "
                    "mounted (%zu partition%s)", st->disk, st->point, np, np == 1 ? "" : "s");
  return rc;
}

/* ---- the whole -------------------------------------------------------------- */

int disk_mount(struct mount_state *st, const char *run, const struct disk_source *src,
               const struct sp_log *log, struct sp_err *e)
{
  if (sp_dirs_prepare_local(SP_MOUNT_RUN_ROOT, 0700, e) < 0)
    return -1;
  if (private_dir(run) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", run);
  int rc = mount_state_save(st, run, e);
  if (rc == 0)
    rc = start_qemu_nbd(st, run, src, log, e);
  if (rc == 0)
    rc = mount_state_save(st, run, e);
  if (rc == 0)
    rc = start_nbdfuse(st, run, e);
  if (rc == 0)
    rc = mount_state_save(st, run, e);
  if (rc == 0)
    rc = mount_disk(st, run, log, e);
  if (rc < 0) {
    struct sp_err ue = { 0 };
    if (disk_unmount(st, run, &ue) < 0)
      sp_warn(log, "cleaning up after the failed mount: %s", ue.msg);
  }
  return rc;
}

/* Whether path is a mount point now (its device differs from its parent's,
 * or it is the same directory as its parent's mount: /proc/self/mountinfo
 * would tell too, but its paths are escaped). */
static bool is_mount_point(const char *path)
{
  struct stat a, b;
  char parent[PATH_MAX + 4];
  snprintf(parent, sizeof parent, "%s/..", path);
  if (lstat(path, &a) < 0)
    return errno == ENOTCONN; /* a FUSE mount whose daemon is gone */
  if (!S_ISDIR(a.st_mode) || stat(parent, &b) < 0)
    return false;
  return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static int unmount_fs(const struct mount_state *st, struct sp_err *e)
{
  for (size_t i = st->nmounts; i-- > 0;) {
    const struct mount_entry *m = &st->mounts[i];
    if (is_mount_point(m->target) && umount2(m->target, UMOUNT_NOFOLLOW) < 0) {
      if (errno == EBUSY)
        return sp_err_set(e, SP_EXIT_FAILED, "%s is busy: a process still uses files there "
                          "(fuser -vm %s shows which); end it, then run stillpoint umount "
                          "%s again", m->target, m->target, st->dir);
      if (errno != EINVAL && errno != ENOENT)
        return sp_err_sys(e, SP_EXIT_FAILED, errno, "unmounting %s", m->target);
    }
    if (m->created && rmdir(m->target) < 0 && errno != ENOENT)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "removing %s", m->target);
  }
  return 0;
}

static void detach_loops(const struct mount_state *st, const char *file)
{
  for (size_t i = st->nloops; i-- > 0;) {
    const char *dev = st->loops[i].dev;
    if (!loop_backs(dev, file))
      continue; /* cleared itself, or another's by now */
    int l = open(dev, O_RDONLY | O_CLOEXEC);
    if (l >= 0) {
      ioctl(l, LOOP_CLR_FD, 0);
      close(l);
    }
    for (int waited = 0; waited < RELEASE_MS && loop_backs(dev, file); waited += 20)
      sleep_ms(20);
  }
}

int disk_unmount(const struct mount_state *st, const char *run, struct sp_err *e)
{
  if (unmount_fs(st, e) < 0)
    return -1;
  char fuse[PATH_MAX], file[PATH_MAX + 8];
  snprintf(fuse, sizeof fuse, "%s/fuse", run);
  snprintf(file, sizeof file, "%s/disk", fuse);
  detach_loops(st, file);
  for (int waited = 0; is_mount_point(fuse); waited += 20) {
    if (umount2(fuse, waited >= RELEASE_MS ? MNT_DETACH : 0) == 0 || errno != EBUSY)
      break;
    sleep_ms(20);
  }
  proc_stop(&st->nbdfuse);
  proc_stop(&st->qemu_nbd);
  if (proc_is(&st->nbdfuse) || proc_is(&st->qemu_nbd))
    return sp_err_set(e, SP_EXIT_FAILED, "nbdfuse (pid %d) or qemu-nbd (pid %d) did not end",
                      (int)st->nbdfuse.pid, (int)st->qemu_nbd.pid);
  if (is_mount_point(fuse))
    return sp_err_set(e, SP_EXIT_FAILED, "%s is still mounted", fuse);
  return sp_rm_rf(run, e);
}

bool disk_mount_alive(const struct mount_state *st, const char *run)
{
  if (!proc_is(&st->qemu_nbd) || !proc_is(&st->nbdfuse))
    return false;
  for (size_t i = 0; i < st->nmounts; i++)
    if (!is_mount_point(st->mounts[i].target))
      return false;
  return st->nmounts > 0;
}
