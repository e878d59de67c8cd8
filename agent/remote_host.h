/* A hypervisor reached over SSH (libssh, SFTP): the sp_host operations on
 * its files.  The session is opened, the host key checked against
 * known_hosts (never accepted silently) and the user authenticated before
 * anything else, so that the pause window only pays for transfers. */
#ifndef SP_REMOTE_HOST_H
#define SP_REMOTE_HOST_H

#include "err.h"
#include "host.h"
#include "remote_target.h"

/* Exit 3 with the reason for an unknown or changed host key, a refused
 * login, or a host without SFTP. */
int remote_host_open(struct sp_host *h, const struct remote_target *t, struct sp_err *e);

#endif
