/* transport = tcp: the backup job's NBD server listens on a TCP port of the
 * hypervisor with libvirt's NBD TLS (<server transport='tcp' tls='yes'>),
 * and the copier connects to it directly with a client certificate: no
 * tunnel.  The server exists only as long as the job: ending the job (or
 * the guardian's abort) closes it.
 *
 * libvirt 9.0 allocates no port for a backup job ("<domainbackup> must
 * specify TCP port for now"), and a port in use fails
 * virDomainBackupBegin inside the pause.  So the port is picked here,
 * before the pause: the first of nbd_port_min..nbd_port_max on which
 * nothing answers, locked on this machine for the run so that parallel
 * runs (backup --all) never pick the same one. */
#ifndef SP_NBD_TCP_H
#define SP_NBD_TCP_H

#include "config.h"
#include "err.h"
#include "host.h"
#include "xalloc.h"

struct nbd_tcp {
  char host[256];          /* where QEMU listens, and the copier connects to */
  int port;                /* 0: none picked */
  int lock_fd;             /* holds the port against other runs here */
  const char *client_dir;  /* tls_client_dir: this machine's certificates */
};
#define NBD_TCP_INIT { .lock_fd = -1 }

/* The hypervisor's address as this machine reaches it: nbd_host, else
 * the -c URI's host, else 127.0.0.1 (the VM runs here). */
const char *nbd_tcp_host(const struct sp_config *cfg, const struct sp_host *h);

/* Picks and locks the port (exit 3 when none is free or the hypervisor
 * does not answer on the range at all). */
int nbd_tcp_pick(struct nbd_tcp *t, const struct sp_config *cfg, const struct sp_host *h,
                 struct sp_err *e);
void nbd_tcp_release(struct nbd_tcp *t);

/* nbds://HOST:PORT/<export>?tls-certificates=<client_dir>, escaped. */
SP_XALLOC char *nbd_tcp_uri(const struct nbd_tcp *t, const char *export_name);

#endif
