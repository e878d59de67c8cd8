/* Which host a libvirt URI reaches over SSH, and with which user, port
 * and key: qemu+ssh://[user@]host[:port]/system[?keyfile=...]. */
#ifndef SP_REMOTE_TARGET_H
#define SP_REMOTE_TARGET_H

#include <limits.h>
#include <stdbool.h>

#include "err.h"
#include "xalloc.h"

struct remote_target {
  bool remote;          /* an SSH transport with a host */
  char user[64];        /* empty: ssh's default */
  char host[256];
  int port;             /* 0: ssh's default */
  char keyfile[PATH_MAX]; /* empty: agent and ~/.ssh/config */
};

/* uri NULL or local: remote = false.  ssh_key (policy or --ssh-key) is used
 * when the URI gives no keyfile. */
int remote_target_parse(const char *uri, const char *ssh_key, struct remote_target *t,
                        struct sp_err *e);
/* The URI for libvirt, with keyfile= added when a key was given apart. */
SP_XALLOC char *remote_target_libvirt_uri(const char *uri, const struct remote_target *t);

#endif
