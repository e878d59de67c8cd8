#include "nbd_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "vm_lock.h"
#include "xalloc.h"

/* Long enough for a hypervisor across a LAN or WAN to refuse a port;
 * a silent drop (a firewall) is the one case that waits it out. */
#define PROBE_MS 1000

const char *nbd_tcp_host(const struct sp_config *cfg, const struct sp_host *h)
{
  const char *set = sp_config_str(cfg, SP_KEY_NBD_HOST);
  if (set[0])
    return set;
  return h->remote ? h->name : "127.0.0.1";
}

enum probe { PROBE_FREE, PROBE_BUSY, PROBE_SILENT };

/* Does anything answer on the address?  A refusal means the port is free
 * for QEMU to bind (seen from here, which is what the copier needs too). */
static enum probe probe(const struct addrinfo *ai, int port, char *why, size_t size)
{
  struct sockaddr_storage ss;
  memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
  if (ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
  _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, size, "%s", strerror(errno));
    return PROBE_SILENT;
  }
  int err = 0;
  if (connect(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0) {
    err = errno;
    if (err == EINPROGRESS) {
      struct pollfd p = { .fd = fd, .events = POLLOUT };
      int n = poll(&p, 1, PROBE_MS);
      socklen_t len = sizeof err;
      if (n == 0)
        err = ETIMEDOUT;
      else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    }
  }
  if (err == 0)
    return PROBE_BUSY;
  if (err == ECONNREFUSED)
    return PROBE_FREE;
  snprintf(why, size, "%s", err == ETIMEDOUT ? "no answer within 1 s" : strerror(err));
  return PROBE_SILENT;
}

/* The run's claim on a port, against other stillpoint runs of this
 * machine; the kernel drops it when the run ends, however it ends. */
static int lock_port(int port, int *fd_out, struct sp_err *e)
{
  char file[64];
  snprintf(file, sizeof file, "nbd-port-%d.lock", port);
  bool taken;
  if (lock_file_try(file, fd_out, &taken, e) < 0)
    return -1;
  if (!taken) {
    close(*fd_out);
    *fd_out = -1;
  }
  return 0;
}

int nbd_tcp_pick(struct nbd_tcp *t, const struct sp_config *cfg, const struct sp_host *h,
                 struct sp_err *e)
{
  const char *host = nbd_tcp_host(cfg, h);
  long min = sp_config_int(cfg, SP_KEY_NBD_PORT_MIN);
  long max = sp_config_int(cfg, SP_KEY_NBD_PORT_MAX);
  t->port = 0;
  t->lock_fd = -1;
  t->client_dir = sp_config_str(cfg, SP_KEY_TLS_CLIENT_DIR);
  if (snprintf(t->host, sizeof t->host, "%s", host) >= (int)sizeof t->host)
    return sp_err_set(e, SP_EXIT_USAGE, "nbd_host %.40s...: too long for a host name", host);
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &ai);
  if (rc != 0)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "transport = tcp: %s (the hypervisor's NBD address) "
                      "does not resolve here: %s; set nbd_host to an address of the hypervisor "
                      "that this machine reaches", host, gai_strerror(rc));
  int busy = 0, failed = 0;
  for (long port = min; port <= max && !t->port && !failed; port++) {
    int fd;
    if ((failed = lock_port((int)port, &fd, e)) < 0)
      break;
    if (fd < 0) {
      busy++;
      continue;
    }
    char why[128] = "";
    enum probe p = probe(ai, (int)port, why, sizeof why);
    if (p == PROBE_FREE) {
      t->port = (int)port;
      t->lock_fd = fd;
    } else {
      close(fd);
      busy++;
    }
    if (p == PROBE_SILENT)
      failed = sp_err_set(e, SP_EXIT_PREFLIGHT, "transport = tcp: %s port %ld does not answer "
                          "from this machine (%s), and the copier connects there directly: "
                          "let this machine reach ports %ld-%ld of %s (a firewall?), set "
                          "nbd_host to an address it reaches, or use transport = unix", host,
                          port, why, min, max, host);
  }
  freeaddrinfo(ai);
  if (failed)
    return -1;
  if (!t->port)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "transport = tcp: all %d ports of nbd_port_min.."
                      "nbd_port_max (%ld-%ld) on %s are taken (something answers on them, or "
                      "another stillpoint run of this machine holds them): widen the range or "
                      "wait for the other runs", busy, min, max, host);
  return 0;
}

void nbd_tcp_release(struct nbd_tcp *t)
{
  if (t->lock_fd >= 0)
    close(t->lock_fd);
  t->lock_fd = -1;
  t->port = 0;
}

/* Percent-encodes all but RFC 3986's unreserved characters and '/'. */
static char *escape(const char *s)
{
  char *out = sp_xmalloc(strlen(s) * 3 + 1), *o = out;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~/", *p))
      *o++ = (char)*p;
    else
      o += sprintf(o, "%%%02X", *p);
  }
  *o = '\0';
  return out;
}

char *nbd_tcp_uri(const struct nbd_tcp *t, const char *export_name)
{
  _cleanup_free_ char *name = escape(export_name), *dir = escape(t->client_dir);
  bool v6 = strchr(t->host, ':') != NULL; /* an IPv6 literal goes in brackets */
  return sp_xasprintf("nbds://%s%s%s:%d/%s?tls-certificates=%s", v6 ? "[" : "", t->host,
                      v6 ? "]" : "", t->port, name, dir);
}
