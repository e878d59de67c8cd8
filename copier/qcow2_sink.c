#include "qcow2_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "xalloc.h"

/* qemu-nbd allocates every request buffer with posix_memalign; with
 * glibc's defaults each one is a fresh mmap and munmap, and the page
 * faults on fresh pages made writing a qcow2 3-4x slower than qemu-img
 * convert on this kind of host (docs/facts.md, "qemu-nbd, qemu-img and
 * qcow2").  Both tunables are needed:
 * either alone changes nothing. */
#define QEMU_NBD_TUNABLES \
  "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"

/* O_DIRECT (--cache=none) keeps the written data out of the page cache
 * and cost the least CPU and time for a durable copy here; compressed
 * images and file systems without O_DIRECT (older tmpfs) get the page
 * cache and the same final flush.  With qemu's default thread pool, not
 * aio=native: qcow2 appends every new cluster at the end of the file, an
 * O_DIRECT write that extends a file blocks inside io_submit on ext4
 * (2.3 ms a call here), and that stalled qemu-nbd's only event loop for
 * each request (2 MiB requests: 41 s instead of 5-6; docs/facts.md). */
static bool direct_io_ok(const char *image)
{
  int fd = open(image, O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

/* --image-opts value: commas in the file name are doubled, qemu's escape. */
static char *image_opts(const char *image, bool compress)
{
  size_t n = strlen(image), commas = 0;
  for (size_t i = 0; i < n; i++)
    commas += image[i] == ',';
  _cleanup_free_ char *esc = sp_xmalloc(n + commas + 1);
  char *w = esc;
  for (size_t i = 0; i < n; i++) {
    *w++ = image[i];
    if (image[i] == ',')
      *w++ = ',';
  }
  *w = '\0';
  /* The compress filter sits on top of the qcow2 node: one level deeper. */
  const char *file = compress ? "file.file" : "file";
  return sp_xasprintf("%s%s.driver=file,%s.filename=%s",
                      compress ? "driver=compress,file.driver=qcow2," : "driver=qcow2,", file,
                      file, esc);
}

int sink_open(struct sink *s, const char *env, const char *qemu_nbd, const char *image,
              bool compress, struct sp_err *e)
{
  /* Compressed clusters land at byte offsets: through O_DIRECT each one
   * is a read-modify-write of its sectors (measured: 1.4x the wall time
   * of the page cache for the same image). */
  const bool direct = !compress && direct_io_ok(image);
  _cleanup_free_ char *opts = image_opts(image, compress);
  s->errfd = memfd_create("qemu-nbd-stderr", MFD_CLOEXEC);
  s->h = nbd_create();
  if (s->errfd < 0 || !s->h) /* memfd_create's errno, or libnbd's (nbd_create) */
    return sp_err_sys(e, SP_EXIT_FAILED, errno ? errno : ENOMEM, "starting qemu-nbd");
  char *argv[] = { (char *)env, QEMU_NBD_TUNABLES, (char *)qemu_nbd, "--image-opts",
                   direct ? "--cache=none" : "--cache=writeback", opts, NULL };
  /* qemu-nbd inherits fd 2 at the fork inside libnbd: point fd 2 at the
   * memfd for that moment only, so its messages become part of our one
   * error line instead of loose lines on our stderr. */
  fflush(stderr);
  _cleanup_close_ int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
  int rc = saved >= 0 && dup2(s->errfd, 2) >= 0 ? 0 : -1;
  if (rc == 0)
    rc = nbd_set_handle_name(s->h, "qemu-nbd") < 0 ||
         nbd_connect_systemd_socket_activation(s->h, argv) < 0 ? -1 : 0;
  const char *why = rc < 0 ? nbd_get_error() : NULL;
  if (saved >= 0)
    dup2(saved, 2);
  if (rc < 0) {
    sp_err_set(e, SP_EXIT_FAILED, "cannot start qemu-nbd on %s: %s", image,
               why ? why : strerror(errno));
    sink_explain(s, e);
    return -1;
  }
  if (nbd_can_zero(s->h) != 1)
    return sp_err_set(e, SP_EXIT_FAILED, "qemu-nbd on %s cannot write zeroes", image);
  return 0;
}

int sink_finish(struct sink *s, const char *image, struct sp_err *e)
{
  if (nbd_flush(s->h, 0) < 0 || nbd_shutdown(s->h, 0) < 0) {
    sp_err_set(e, SP_EXIT_FAILED, "flushing %s: %s", image, nbd_get_error());
    sink_explain(s, e);
    return -1;
  }
  nbd_close(s->h); /* waits for qemu-nbd to exit */
  s->h = NULL;
  return 0;
}

void sink_explain(const struct sink *s, struct sp_err *e)
{
  char buf[1024];
  struct stat st;
  if (s->errfd < 0 || fstat(s->errfd, &st) < 0)
    return;
  /* The tail is enough: it holds the last line. */
  off_t from = st.st_size > (off_t)sizeof buf - 1 ? st.st_size - (off_t)sizeof buf + 1 : 0;
  ssize_t n = pread(s->errfd, buf, sizeof buf - 1, from);
  if (n <= 0)
    return;
  buf[n] = '\0';
  /* Its last line, which says why it stopped. */
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = '\0';
  char *line = strrchr(buf, '\n');
  line = line ? line + 1 : buf;
  size_t used = strlen(e->msg);
  snprintf(e->msg + used, sizeof e->msg - used, " (%s)", line);
}

void sink_close(struct sink *s)
{
  if (s->h)
    nbd_close(s->h);
  if (s->errfd >= 0)
    close(s->errfd);
  *s = (struct sink)SINK_INIT;
}
