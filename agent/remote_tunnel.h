/* The NBD export of a remote backup job, brought here: OpenSSH forwards a
 * local unix socket to the job's unix socket on the hypervisor
 * (`ssh -N -L local:remote`), so nothing listens on the network and the
 * copier sees an ordinary nbd+unix URI. */
#ifndef SP_REMOTE_TUNNEL_H
#define SP_REMOTE_TUNNEL_H

#include <sys/types.h>

#include "err.h"
#include "remote_target.h"

struct remote_tunnel {
  pid_t pid;
  char local[108];
};
#define REMOTE_TUNNEL_INIT { .pid = -1 }

/* Starts ssh and waits (bounded) until the local socket accepts. */
int remote_tunnel_open(struct remote_tunnel *tn, const struct remote_target *t,
                       const char *local_sock, const char *remote_sock, struct sp_err *e);
void remote_tunnel_close(struct remote_tunnel *tn);

#endif
