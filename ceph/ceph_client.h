/* A Ceph client handle as stillpoint makes one: the site's configuration
 * and identity (policy or the copier contract's STILLPOINT_CEPH_*), and
 * op timeouts always set, because by default a dead OSD blocks a client
 * forever (docs/facts.md, "Ceph"). */
#ifndef SP_CEPH_CLIENT_H
#define SP_CEPH_CLIENT_H


#include "ceph_lib.h"
#include "cleanup.h"
#include "err.h"

#define SP_CEPH_TIMEOUT_DEFAULT 60
#define SP_CEPH_TIMEOUT_MIN 5
#define SP_CEPH_TIMEOUT_MAX 3600

struct sp_ceph_opts {
  const char *conf;    /* configuration file; NULL: librados's search ($CEPH_CONF, /etc/ceph/ceph.conf) */
  const char *user;    /* client name without "client."; NULL: admin */
  const char *keyring; /* NULL: the configuration's, or /etc/ceph/ceph.client.USER.keyring */
  unsigned timeout_s;  /* op and mount timeouts; 0: SP_CEPH_TIMEOUT_DEFAULT */
};

/* Connects; on failure the message names the cluster, user and what to
 * check.  The handle is the caller's (rados_shutdown). */
int sp_ceph_connect(const struct sp_ceph_opts *o, rados_t *out, struct sp_err *e);
/* An I/O context on pool, in namespace ns (NULL: the default one). */
int sp_ceph_ioctx(rados_t cluster, const char *pool, const char *ns, rados_ioctx_t *out,
                  struct sp_err *e);

/* Cleanup helpers for librados handles, beside their types: each takes a
 * pointer to a handle that may be NULL. */
void sp_rados_ioctx_destroy(rados_ioctx_t *io);
void sp_rados_read_op_release(rados_read_op_t *op);
void sp_rados_write_op_release(rados_write_op_t *op);
#define _cleanup_ioctx_ _cleanup_(sp_rados_ioctx_destroy)
#define _cleanup_rop_ _cleanup_(sp_rados_read_op_release)
#define _cleanup_wop_ _cleanup_(sp_rados_write_op_release)

#endif
