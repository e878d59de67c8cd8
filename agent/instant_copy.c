#include "instant_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libxml/tree.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "clock.h"
#include "domain_xml.h"
#include "fsutil.h"
#include "instant_xml.h"
#include "virt.h"
#include "xalloc.h"

enum {
  POLL_MS = 250,
  PROGRESS_MS = 2000,  /* a progress line at most this often */
  STOP_MS = 5000,      /* qemu-nbd: SIGTERM, then SIGKILL */
};

static void sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

int instant_run_dir(const char *uuid, char out[PATH_MAX], struct sp_err *e)
{
  if (snprintf(out, PATH_MAX, "%s/%s", SP_INSTANT_RUN_ROOT, uuid) >= PATH_MAX)
    return sp_err_set(e, SP_EXIT_FAILED, "run directory name too long");
  return 0;
}

/* ---- the point's chain over NBD ------------------------------------------ */

static void paths(const char *run, const char *target, char sock[PATH_MAX], char pid[PATH_MAX])
{
  snprintf(sock, PATH_MAX, "%s/%s.sock", run, target);
  snprintf(pid, PATH_MAX, "%s/%s.pid", run, target);
}

int instant_serve(const struct sp_disk_chain *c, const char *run, uid_t uid, gid_t gid,
                  char **sock_out, struct sp_err *e)
{
  char sock[PATH_MAX], pidf[PATH_MAX], sockopt[PATH_MAX + 16], pidopt[PATH_MAX + 16];
  paths(run, c->target, sock, pidf);
  snprintf(sockopt, sizeof sockopt, "--socket=%s", sock);
  snprintf(pidopt, sizeof pidopt, "--pid-file=%s", pidf);
  /* The chain as QEMU block options on the descriptors that were checked,
   * every driver pinned, the full's backing none: nothing probed, no name
   * from a header followed (as stillpoint mount serves it). */
  _cleanup_free_ int *fds = NULL;
  size_t nfds = 0;
  _cleanup_free_ char *spec = sp_chain_json(c, 0, 3, &fds, &nfds);
  if (!spec)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: its chain has no image format qemu-nbd can "
                      "be given", c->target);
  /* --fork returns once it listens; --persistent and --shared: QEMU may
   * reconnect (a reopen during the copy) and the copy reads beside the VM. */
  char *argv[] = { "qemu-nbd", "--fork", "--persistent", "--read-only", "--shared=8",
                   "--cache=writeback", sockopt, pidopt, spec, NULL };
  struct sp_run_result r;
  if (sp_run_fds(argv, fds, nfds, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int rc = 0;
  if (r.status != 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-nbd cannot serve the chain of disk %s: %s",
                    c->target, r.err ? r.err : "");
  sp_run_result_free(&r);
  if (rc < 0)
    return -1;
  /* QEMU runs as its own user: the socket is its, nobody else's. */
  if (lchown(sock, uid, gid) < 0 || chmod(sock, 0600) < 0) {
    int err = errno;
    instant_unserve(run, c->target);
    return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot give %s to QEMU's user", sock);
  }
  *sock_out = sp_xstrdup(sock);
  return 0;
}

/* The pid in the file, only while it is a qemu-nbd serving sock: a pid
 * reused since is never signalled. */
static pid_t server_pid(const char *pidf, const char *sock)
{
  _cleanup_free_ char *text = NULL, *cmd = NULL;
  size_t len, clen;
  struct sp_err ignored = { 0 };
  long v;
  if (sp_read_file(pidf, 64, &text, &len, &ignored) < 0 || sscanf(text, "%ld", &v) != 1 ||
      v <= 1 || v > 4194304)
    return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", v);
  if (sp_read_file(path, 1 << 20, &cmd, &clen, &ignored) < 0)
    return 0;
  bool is_nbd = false, has_sock = false;
  char want[PATH_MAX + 16];
  snprintf(want, sizeof want, "--socket=%s", sock);
  for (size_t off = 0; off < clen; off += strlen(cmd + off) + 1) {
    const char *a = cmd + off;
    const char *base = strrchr(a, '/');
    is_nbd |= off == 0 && strcmp(base ? base + 1 : a, "qemu-nbd") == 0;
    has_sock |= strcmp(a, want) == 0;
  }
  return is_nbd && has_sock ? (pid_t)v : 0;
}

/* Running, not a zombie: a daemon qemu-nbd belongs to whoever reaps orphans. */
static bool alive(pid_t pid)
{
  char path[64], state = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  _cleanup_fclose_ FILE *f = fopen(path, "re");
  return f && fscanf(f, "%*d (%*[^)]) %c", &state) == 1 && state != 'Z' && state != 'X';
}

void instant_unserve(const char *run, const char *target)
{
  char sock[PATH_MAX], pidf[PATH_MAX];
  paths(run, target, sock, pidf);
  pid_t pid = server_pid(pidf, sock);
  if (pid > 0 && kill(pid, SIGTERM) == 0)
    for (int waited = 0; alive(pid); waited += 20) {
      if (waited == STOP_MS)
        kill(pid, SIGKILL);
      if (waited > STOP_MS + 2000)
        break;
      sleep_ms(20);
    }
  unlink(sock);
  unlink(pidf);
}

int instant_overlay_create(int dir_fd, const char *dir, const char *name, const char *sock,
                           uint64_t vsize, struct sp_err *e)
{
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s/%s exists: refusing to overwrite it (restore "
                      "under another --name or into another --disks-to)", dir, name);
  _cleanup_free_ char *backing = sp_xasprintf("nbd+unix:///?socket=%s", sock);
  _cleanup_free_ char *out = sp_xasprintf("/proc/self/fd/3/%s", name);
  _cleanup_free_ char *size = sp_xasprintf("%llu", (unsigned long long)vsize);
  /* -u: the backing is not opened now; the domain XML names it again. */
  char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw",
                   out, size, NULL };
  struct sp_run_result r;
  if (sp_run_fds(argv, &dir_fd, 1, SP_RUN_CAPTURE_ERR, &r, e) < 0)
    return -1;
  int rc = 0;
  if (r.status != 0)
    rc = sp_err_set(e, SP_EXIT_FAILED, "qemu-img create %s/%s failed: %s", dir, name,
                    r.err ? r.err : "");
  sp_run_result_free(&r);
  if (rc < 0)
    return -1;
  _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0600) < 0 || fsync(fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot finish %s/%s", dir, name);
  return 0;
}

/* ---- the copy ------------------------------------------------------------ */

static char *dest_xml(const struct instant_disk *d)
{
  _cleanup_free_ char *path = sp_path_join(d->dir, d->final);
  _cleanup_free_ char *esc = (char *)xmlEncodeSpecialChars(NULL, (const xmlChar *)path);
  if (!esc) /* libxml2's own allocation failed */
    return NULL;
  return sp_xasprintf("<disk type='file'><driver type='%s'/><source file='%s'/></disk>",
                      d->format, esc);
}

/* The disk's live source: where QEMU has it now. */
static char *live_source(virDomainPtr dom, const char *target)
{
  _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, 0);
  struct sp_domain dd = { 0 };
  struct sp_err ignored = { 0 };
  char *src = NULL;
  if (xml && sp_domain_parse(xml, strlen(xml), &dd, &ignored) == 0) {
    const struct sp_disk *k = sp_domain_disk(&dd, target);
    if (k && k->source)
      src = strdup(k->source);
  }
  sp_domain_free(&dd);
  return src;
}

static bool is_final(virDomainPtr dom, const struct instant_disk *d)
{
  _cleanup_free_ char *src = live_source(dom, d->target);
  _cleanup_free_ char *want = sp_path_join(d->dir, d->final);
  return src && want && strcmp(src, want) == 0;
}

static int start_copy(virDomainPtr dom, struct instant_disk *d, unsigned long long bandwidth,
                      const struct sp_log *log, struct sp_err *e)
{
  virDomainBlockJobInfo info;
  int have = virDomainGetBlockJobInfo(dom, d->target, &info, 0);
  if (have == 1 && info.type == VIR_DOMAIN_BLOCK_JOB_TYPE_COPY) {
    sp_info(log, "disk %s: a copy is running already; following it", d->target);
    return 0;
  }
  if (have == 1)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s has another block job running (virsh "
                      "blockjob %s %s --info); let it end first", d->target,
                      virDomainGetName(dom), d->target);
  /* What a copy that stopped left behind: QEMU writes the image anew. */
  if (unlinkat(d->dir_fd, d->final, 0) == 0)
    sp_info(log, "disk %s: removed the incomplete %s/%s of an earlier copy", d->target, d->dir,
            d->final);
  else if (errno != ENOENT)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot remove the incomplete %s/%s of an "
                      "earlier copy", d->dir, d->final);
  _cleanup_free_ char *xml = dest_xml(d);
  if (!xml)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "block copy");
  virTypedParameterPtr params = NULL;
  int np = 0, maxp = 0;
  if (bandwidth && virTypedParamsAddULLong(&params, &np, &maxp, VIR_DOMAIN_BLOCK_COPY_BANDWIDTH,
                                           bandwidth) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "block copy");
  /* Full (no SHALLOW): the final image holds everything, the point
   * nothing of it.  TRANSIENT_JOB: libvirt refuses a copy of a persistent
   * domain's disk without it. */
  int rc = virDomainBlockCopy(dom, d->target, xml, params, np,
                              VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB);
  virTypedParamsFree(params, np);
  if (rc < 0)
    return sp_err_set(e, SP_EXIT_FAILED, "disk %s: libvirt refused the copy to %s/%s: %s",
                      d->target, d->dir, d->final, virt_errmsg());
  sp_info(log, "disk %s: copying to %s/%s", d->target, d->dir, d->final);
  return 0;
}

static void progress(const struct instant_disk *d, size_t n, unsigned long long cur,
                     unsigned long long end, double rate, bool json, const struct sp_log *log)
{
  size_t done = 0;
  for (size_t i = 0; i < n; i++)
    done += d[i].pivoted;
  double pct = end ? 100.0 * (double)cur / (double)end : 0;
  long eta = rate > 0 && end > cur ? (long)((double)(end - cur) / rate + 0.5) : -1;
  if (json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "event", json_object_new_string("progress"));
    json_object_object_add(o, "copied_bytes", json_object_new_int64((int64_t)cur));
    json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)end));
    json_object_object_add(o, "percent", json_object_new_double((double)(long)(pct * 10) / 10));
    json_object_object_add(o, "eta_s", eta >= 0 ? json_object_new_int64(eta) : NULL);
    json_object_object_add(o, "disks_pivoted", json_object_new_int((int)done));
    json_object_object_add(o, "disks", json_object_new_int((int)n));
    fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return;
  }
  char left[48] = "";
  if (eta >= 0)
    snprintf(left, sizeof left, ", about %ld:%02ld left", eta / 60, eta % 60);
  sp_info(log, "copying: %.1f%% (%.1f of %.1f MiB)%s, %zu of %zu disk%s pivoted", pct,
          (double)cur / 1048576.0, (double)end / 1048576.0, left, done, n, n == 1 ? "" : "s");
}

int instant_copy(virDomainPtr dom, struct instant_disk *d, size_t n, unsigned long long bandwidth,
                 bool json, const struct sp_log *log, struct sp_err *e)
{
  bool *live = sp_xcalloc(n ? n : 1, sizeof *live);
  unsigned long long *cur = sp_xcalloc(n ? n : 1, sizeof *cur);
  unsigned long long *end = sp_xcalloc(n ? n : 1, sizeof *end);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    free(d[i].error);
    d[i].error = NULL;
    if ((d[i].pivoted = is_final(dom, &d[i])))
      continue;
    struct sp_err ce = { 0 };
    if (start_copy(dom, &d[i], bandwidth, log, &ce) < 0) {
      d[i].error = strdup(ce.msg);
      failed++;
    } else {
      live[i] = true;
    }
  }
  double t0 = (double)sp_now_ms() / 1000.0, last = 0, c0 = -1;
  for (size_t running = n; running;) {
    running = 0;
    unsigned long long sc = 0, se = 0;
    for (size_t i = 0; i < n; i++) {
      if (!live[i]) {
        sc += cur[i], se += end[i];
        continue;
      }
      virDomainBlockJobInfo info;
      int have = virDomainGetBlockJobInfo(dom, d[i].target, &info, 0);
      int active = have < 0 ? virDomainIsActive(dom) : 1;
      if (active != 1) {
        /* The copy may well go on in QEMU; --resume follows it. */
        char why[512];
        snprintf(why, sizeof why, "%s", active == 0 ? "the VM stopped" : virt_errmsg());
        d[i].error = strdup(why);
        live[i] = false, failed++;
      } else if (have == 1) {
        cur[i] = info.cur, end[i] = info.end;
        /* Ready: the copy caught up and mirrors every new write. */
        if (info.end > 0 && info.cur == info.end &&
            virDomainBlockJobAbort(dom, d[i].target, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) {
          d[i].pivoted = true, live[i] = false;
          sp_info(log, "disk %s: pivoted to %s/%s", d[i].target, d[i].dir, d[i].final);
        }
      } else if (have == 0) {
        /* Gone without our pivot: it failed (QEMU says why in its log). */
        live[i] = false;
        if (!(d[i].pivoted = is_final(dom, &d[i]))) {
          char why[512];
          snprintf(why, sizeof why, "the copy stopped before it was complete (QEMU's reason "
                   "is in /var/log/libvirt/qemu/%s.log)", virDomainGetName(dom));
          d[i].error = strdup(why);
          failed++;
        }
      }
      running += live[i];
      sc += cur[i], se += end[i];
    }
    double t = (double)sp_now_ms() / 1000.0;
    if (c0 < 0)
      c0 = (double)sc;
    if (running && t - last >= PROGRESS_MS / 1000.0) {
      double rate = t > t0 + 0.5 ? ((double)sc - c0) / (t - t0) : 0;
      progress(d, n, sc, se, rate, json, log);
      last = t;
    }
    if (running)
      sleep_ms(POLL_MS);
  }
  free(live), free(cur), free(end);
  if (!failed)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (d[i].error)
      sp_err_set(e, SP_EXIT_FAILED, "disk %s: %s", d[i].target, d[i].error);
  return -1;
}

int instant_finish(virConnectPtr conn, virDomainPtr dom, struct instant_disk *d, size_t n,
                   const char *run, const struct sp_log *log, struct sp_err *e)
{
  /* The definition the VM starts from next time: its final images. */
  _cleanup_free_ char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE |
                                                      VIR_DOMAIN_XML_SECURE);
  _cleanup_free_ struct instant_xml_disk *xd = sp_xcalloc(n ? n : 1, sizeof *xd);
  _cleanup_free_ char **finals = sp_xcalloc(n ? n : 1, sizeof *finals);
  _cleanup_free_ char *out = NULL;
  if (!xml)
    return sp_err_set(e, SP_EXIT_FAILED, "cannot read the definition of %s: %s",
                      virDomainGetName(dom), virt_errmsg());
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    finals[i] = sp_path_join(d[i].dir, d[i].final);
    xd[i] = (struct instant_xml_disk){ d[i].target, finals[i], d[i].format, NULL, NULL };
  }
  if (rc == 0 && instant_xml_disks(xml, strlen(xml), xd, n, &out, e) == 0) {
    virDomainPtr def = virDomainDefineXML(conn, out);
    if (!def)
      rc = sp_err_set(e, SP_EXIT_FAILED, "every disk pivoted, but libvirt refused the definition "
                      "on the final images: %s", virt_errmsg());
    else
      virDomainFree(def);
  } else if (rc == 0) {
    rc = -1;
  }
  for (size_t i = 0; i < n; i++)
    free(finals[i]);
  if (rc < 0)
    return -1;
  /* Nothing reads the point or the overlays any more. */
  for (size_t i = 0; i < n; i++) {
    instant_unserve(run, d[i].target);
    if (unlinkat(d[i].dir_fd, d[i].overlay, 0) < 0 && errno != ENOENT)
      sp_warn(log, "cannot remove the overlay %s/%s: %s", d[i].dir, d[i].overlay,
              strerror(errno));
    fsync(d[i].dir_fd);
  }
  struct sp_err ignored = { 0 };
  sp_rm_rf(run, &ignored);
  return 0;
}

void instant_disks_free(struct instant_disk *d, size_t n)
{
  for (size_t i = 0; d && i < n; i++) {
    free(d[i].target);
    free(d[i].dir);
    if (d[i].dir_fd >= 0)
      close(d[i].dir_fd);
    free(d[i].overlay);
    free(d[i].final);
    free(d[i].error);
  }
  free(d);
}
