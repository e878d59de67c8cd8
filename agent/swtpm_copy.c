#include "swtpm_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"

enum { STOP_WAIT_MS = 5000 };

int swtpm_copy_start(struct swtpm_copy *s, const struct sp_tree *tree, const char *version,
                     struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  s->pid = -1;
  snprintf(s->dir, sizeof s->dir, "/tmp/stillpoint-tpm-XXXXXX");
  if (!mkdtemp(s->dir)) {
    s->dir[0] = '\0';
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot make a private directory for swtpm");
  }
  snprintf(s->sock, sizeof s->sock, "%s/s", s->dir);
  char state[80], spec[96], sspec[128], cspec[128], lspec[96], log[80];
  snprintf(state, sizeof state, "%s/state", s->dir);
  snprintf(log, sizeof log, "%s/log", s->dir);
  snprintf(spec, sizeof spec, "dir=%s", state);
  snprintf(sspec, sizeof sspec, "type=unixio,path=%s", s->sock);
  snprintf(cspec, sizeof cspec, "type=unixio,path=%s.ctrl", s->sock);
  snprintf(lspec, sizeof lspec, "file=%s,level=1", log);
  _cleanup_close_ int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || mkdirat(dfd, "state", 0700) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", s->dir);
  _cleanup_close_ int st = openat(dfd, "state", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (st < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", state);
  if (sp_tree_write_at(st, tree, false, e) < 0)
    return -1;
  char *argv[20];
  int n = 0;
  /* swtpm ends with us, even when we are killed or crash: setpriv
   * (util-linux) sets its parent-death signal and becomes swtpm. */
  argv[n++] = "setpriv";
  argv[n++] = "--pdeathsig";
  argv[n++] = "TERM";
  argv[n++] = "--";
  argv[n++] = "swtpm";
  argv[n++] = "socket";
  if (strcmp(version, "2.0") == 0)
    argv[n++] = "--tpm2"; /* without it swtpm is a TPM 1.2 */
  char *rest[] = { "--tpmstate", spec, "--server", sspec, "--ctrl", cspec, "--log", lspec,
                   "--flags", "not-need-init,startup-clear", NULL };
  memcpy(argv + n, rest, sizeof rest);
  _cleanup_close_ int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  s->pid = sp_spawn(argv, NULL, devnull, devnull, e);
  return s->pid < 0 ? -1 : 0;
}

void swtpm_copy_explain(const struct swtpm_copy *s, struct sp_err *e)
{
  char log[96];
  snprintf(log, sizeof log, "%s/log", s->dir);
  _cleanup_free_ char *text = NULL;
  size_t len;
  struct sp_err ignored = { 0 };
  if (!s->dir[0] || sp_read_file(log, 1 << 16, &text, &len, &ignored) < 0 || !len)
    return;
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
    text[--len] = '\0';
  const char *tail = len > 400 ? text + len - 400 : text;
  size_t n = strlen(e->msg);
  snprintf(e->msg + n, sizeof e->msg - n, " (swtpm: %s)", tail);
}

bool swtpm_copy_alive(struct swtpm_copy *s)
{
  if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid)
    s->pid = -1;
  return s->pid > 0;
}

int swtpm_copy_connect(struct swtpm_copy *s, int timeout_ms, struct sp_err *e)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
      return fd;
    close(fd);
    if (!swtpm_copy_alive(s))
      break;
    nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
  }
  sp_err_set(e, SP_EXIT_FAILED, "swtpm did not start on this TPM state");
  swtpm_copy_explain(s, e);
  return -1;
}

void swtpm_copy_stop(struct swtpm_copy *s)
{
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int waited = 0;
    while (waitpid(s->pid, NULL, WNOHANG) == 0) {
      if (waited >= STOP_WAIT_MS) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        break;
      }
      nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
      waited += 10;
    }
    s->pid = -1;
  }
  if (s->dir[0]) {
    struct sp_err ignored = { 0 };
    sp_rm_rf(s->dir, &ignored);
    s->dir[0] = '\0';
  }
}
