#include "ceph_client.h"

#include <stdio.h>
#include <string.h>

int sp_ceph_connect(const struct sp_ceph_opts *o, rados_t *out, struct sp_err *e)
{
  const char *user = o->user ? o->user : "admin";
  const char *conf = o->conf ? o->conf : "the default ceph.conf";
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%u", o->timeout_s ? o->timeout_s : SP_CEPH_TIMEOUT_DEFAULT);
  rados_t c = NULL;
  if (sp_ceph_lib_load(e) < 0)
    return -1;
  int rc = rados_create(&c, user);
  /* NULL reads $CEPH_CONF or /etc/ceph/ceph.conf, as the ceph tools do. */
  if (!rc)
    rc = rados_conf_read_file(c, o->conf);
  if (!rc && o->keyring)
    rc = rados_conf_set(c, "keyring", o->keyring);
  /* librados's own log lines would interleave with ours (one line per
   * message is the copier's and the coordinator's interface); every
   * failure comes back as an error code we word ourselves. */
  if (!rc)
    rc = rados_conf_set(c, "log_to_stderr", "false");
  if (!rc)
    rc = rados_conf_set(c, "err_to_stderr", "false");
  if (!rc)
    rc = rados_conf_set(c, "rados_osd_op_timeout", timeout);
  if (!rc)
    rc = rados_conf_set(c, "rados_mon_op_timeout", timeout);
  if (!rc)
    rc = rados_conf_set(c, "client_mount_timeout", timeout);
  if (rc < 0) {
    if (c)
      rados_shutdown(c);
    return sp_err_sys(e, SP_EXIT_FAILED, -rc,
                      "Ceph client configuration %s (check ceph_conf and ceph_keyring)", conf);
  }
  rc = rados_connect(c);
  if (rc < 0) {
    rados_shutdown(c);
    return sp_err_sys(e, SP_EXIT_FAILED, -rc,
                      "cannot connect to the Ceph cluster of %s as client.%s within %s s "
                      "(check the monitors are up, and the user's key in its keyring)",
                      conf, user, timeout);
  }
  *out = c;
  return 0;
}

int sp_ceph_ioctx(rados_t cluster, const char *pool, const char *ns, rados_ioctx_t *out,
                  struct sp_err *e)
{
  int rc = rados_ioctx_create(cluster, pool, out);
  if (rc < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, -rc,
                      "Ceph pool %s (does it exist, and may this client use it?)", pool);
  rados_ioctx_set_namespace(*out, ns);
  return 0;
}

void sp_rados_ioctx_destroy(rados_ioctx_t *io)
{
  if (*io)
    rados_ioctx_destroy(*io);
}

void sp_rados_read_op_release(rados_read_op_t *op)
{
  if (*op)
    rados_release_read_op(*op);
}

void sp_rados_write_op_release(rados_write_op_t *op)
{
  if (*op)
    rados_release_write_op(*op);
}
