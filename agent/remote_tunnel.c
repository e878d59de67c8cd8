#include "remote_tunnel.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"

static bool accepts(const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

int remote_tunnel_open(struct remote_tunnel *tn, const struct remote_target *t,
                       const char *local_sock, const char *remote_sock, struct sp_err *e)
{
  tn->pid = -1;
  snprintf(tn->local, sizeof tn->local, "%s", local_sock);
  char fwd[512], port[16];
  snprintf(fwd, sizeof fwd, "%s:%s", local_sock, remote_sock);
  snprintf(port, sizeof port, "%d", t->port);
  /* argv, no shell; host keys checked by ssh itself against known_hosts
   * (BatchMode: an unknown key fails instead of asking). */
  char *argv[24];
  int n = 0;
  argv[n++] = "ssh";
  argv[n++] = "-N";
  argv[n++] = "-o";
  argv[n++] = "BatchMode=yes";
  argv[n++] = "-o";
  argv[n++] = "ExitOnForwardFailure=yes";
  argv[n++] = "-o";
  argv[n++] = "StreamLocalBindUnlink=yes";
  argv[n++] = "-o";
  argv[n++] = "ServerAliveInterval=10";
  if (t->port) {
    argv[n++] = "-p";
    argv[n++] = port;
  }
  if (t->user[0]) {
    argv[n++] = "-l";
    argv[n++] = (char *)t->user;
  }
  if (t->keyfile[0]) {
    argv[n++] = "-i";
    argv[n++] = (char *)t->keyfile;
  }
  argv[n++] = "-L";
  argv[n++] = fwd;
  argv[n++] = "--";
  argv[n++] = (char *)t->host;
  argv[n] = NULL;
  tn->pid = sp_spawn(argv, NULL, -1, -1, e);
  if (tn->pid < 0)
    return -1;
  for (long long start = sp_now_ms(); sp_now_ms() - start < 15000;) {
    if (accepts(local_sock))
      return 0;
    int ws;
    if (waitpid(tn->pid, &ws, WNOHANG) == tn->pid) {
      tn->pid = -1;
      return sp_err_set(e, SP_EXIT_FAILED, "the SSH tunnel to %s exited (%d) before forwarding "
                        "%s: see ssh's message above", t->host, sp_exit_status(ws), remote_sock);
    }
    usleep(20 * 1000);
  }
  remote_tunnel_close(tn);
  return sp_err_set(e, SP_EXIT_FAILED, "the SSH tunnel to %s did not forward %s within 15 s",
                    t->host, remote_sock);
}

void remote_tunnel_close(struct remote_tunnel *tn)
{
  if (tn->pid > 0) {
    kill(tn->pid, SIGTERM);
    while (waitpid(tn->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    tn->pid = -1;
  }
  if (tn->local[0])
    unlink(tn->local);
}
