#include "tpm_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fsutil.h"
#include "state_capture.h"

/* TPM2_GetRandom(8): tag NO_SESSIONS, size 12, command code 0x17b. */
static const unsigned char get_random2[] = { 0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8 };
/* TPM_GetRandom(8) of TPM 1.2: tag RQU_COMMAND, size 14, ordinal 0x46. */
static const unsigned char get_random12[] = { 0x00, 0xc1, 0, 0, 0, 14, 0, 0, 0, 0x46,
                                              0, 0, 0, 8 };

static int connect_unix(const char *path, int timeout_ms)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
      return fd;
    close(fd);
    usleep(20 * 1000);
  }
  return -1;
}

static int ask(int fd, const unsigned char *cmd, size_t len, unsigned *rc, struct sp_err *e)
{
  if (write(fd, cmd, len) != (ssize_t)len)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "writing to swtpm");
  unsigned char resp[64];
  size_t got = 0;
  while (got < 10) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 5000) != 1)
      return sp_err_set(e, SP_EXIT_FAILED, "swtpm did not answer");
    ssize_t n = read(fd, resp + got, sizeof resp - got);
    if (n <= 0)
      return sp_err_set(e, SP_EXIT_FAILED, "swtpm closed the connection (it could not load "
                        "the state)");
    got += (size_t)n;
  }
  *rc = (unsigned)resp[6] << 24 | (unsigned)resp[7] << 16 | (unsigned)resp[8] << 8 | resp[9];
  return 0;
}

int tpm_probe(const struct sp_tree *t, const char *version, struct sp_err *e)
{
  char dir[] = "/tmp/stillpoint-tpm-XXXXXX";
  if (!mkdtemp(dir))
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "mkdtemp");
  int rc = -1;
  pid_t pid = -1;
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char state[64], sock[64], ctrl[64], spec[96], sspec[96], cspec[96];
  snprintf(state, sizeof state, "%s/state", dir);
  snprintf(sock, sizeof sock, "%s/s", dir);
  snprintf(ctrl, sizeof ctrl, "%s/c", dir);
  snprintf(spec, sizeof spec, "dir=%s", state);
  snprintf(sspec, sizeof sspec, "type=unixio,path=%s", sock);
  snprintf(cspec, sizeof cspec, "type=unixio,path=%s", ctrl);
  bool tpm2 = strcmp(version, "2.0") == 0;
  _cleanup_close_ int sfd = -1;
  if (dfd < 0 || mkdirat(dfd, "state", 0700) < 0) {
    sp_err_sys(e, SP_EXIT_FAILED, errno, "%s", dir);
    goto out;
  }
  {
    _cleanup_close_ int st = openat(dfd, "state", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st < 0 || sp_tree_write_at(st, t, false, e) < 0)
      goto out;
  }
  char *argv[16];
  int n = 0;
  argv[n++] = "swtpm";
  argv[n++] = "socket";
  if (tpm2)
    argv[n++] = "--tpm2";
  argv[n++] = "--tpmstate";
  argv[n++] = spec;
  argv[n++] = "--server";
  argv[n++] = sspec;
  argv[n++] = "--ctrl";
  argv[n++] = cspec;
  argv[n++] = "--flags";
  argv[n++] = "not-need-init,startup-clear";
  argv[n] = NULL;
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid = sp_spawn(argv, NULL, devnull, devnull, e);
  if (devnull >= 0)
    close(devnull);
  if (pid < 0)
    goto out;
  sfd = connect_unix(sock, 5000);
  if (sfd < 0) {
    sp_err_set(e, SP_EXIT_FAILED, "swtpm did not start on this state");
    goto out;
  }
  unsigned code = 0;
  if (ask(sfd, tpm2 ? get_random2 : get_random12, tpm2 ? sizeof get_random2
                                                       : sizeof get_random12, &code, e) < 0)
    goto out;
  if (code != 0) {
    sp_err_set(e, SP_EXIT_FAILED, "swtpm loaded the state but answers with TPM error 0x%x",
               code);
    goto out;
  }
  rc = 0;
out:
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
  }
  struct sp_err ignored = { 0 };
  sp_rm_rf(dir, &ignored);
  return rc;
}
