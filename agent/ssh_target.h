/* Which host a libvirt URI reaches over SSH, and with which user, port
 * and key: qemu+ssh://[user@]host[:port]/system[?keyfile=...]. */
#ifndef SP_SSH_TARGET_H
#define SP_SSH_TARGET_H

#include <limits.h>
#include <stdbool.h>

#include "err.h"

struct ssh_target {
  bool remote;          /* an SSH transport with a host */
  char user[64];        /* empty: ssh's default */
  char host[256];
  int port;             /* 0: ssh's default */
  char keyfile[PATH_MAX]; /* empty: agent and ~/.ssh/config */
};

/* uri NULL or local: remote = false.  ssh_key (policy or --ssh-key) is used
 * when the URI gives no keyfile. */
int ssh_target_parse(const char *uri, const char *ssh_key, struct ssh_target *t,
                     struct sp_err *e);
/* The URI for libvirt, with keyfile= added when a key was given apart. */
char *ssh_target_libvirt_uri(const char *uri, const struct ssh_target *t);

#endif
