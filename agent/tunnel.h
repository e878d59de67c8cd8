/* The NBD export of a remote backup job, brought here: OpenSSH forwards a
 * local unix socket to the job's unix socket on the hypervisor
 * (`ssh -N -L local:remote`), so nothing listens on the network and the
 * copier sees an ordinary nbd+unix URI. */
#ifndef SP_TUNNEL_H
#define SP_TUNNEL_H

#include <sys/types.h>

#include "err.h"
#include "ssh_target.h"

struct tunnel {
  pid_t pid;
  char local[108];
};

/* Starts ssh and waits (bounded) until the local socket accepts. */
int tunnel_open(struct tunnel *tn, const struct ssh_target *t, const char *local_sock,
                const char *remote_sock, struct sp_err *e);
void tunnel_close(struct tunnel *tn);

#endif
