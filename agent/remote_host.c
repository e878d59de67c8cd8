#include "remote_host.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "sha256.h"
#include "state_capture.h"
#include "strv.h"
#include "xalloc.h"

struct remote {
  ssh_session ssh;
  sftp_session sftp;
  char *passwd, *group; /* the host's /etc/passwd and /etc/group, read once */
};

static struct remote *R(struct sp_host *h) { return h->impl; }

static int sftp_fail(struct sp_host *h, struct sp_err *e, const char *what, const char *path)
{
  int code = sftp_get_error(R(h)->sftp);
  const char *why = code == SSH_FX_NO_SUCH_FILE       ? "no such file"
                    : code == SSH_FX_PERMISSION_DENIED ? "permission denied"
                    : code == SSH_FX_FILE_ALREADY_EXISTS ? "exists already"
                                                         : ssh_get_error(R(h)->ssh);
  return sp_err_set(e, code == SSH_FX_PERMISSION_DENIED ? SP_EXIT_PREFLIGHT : SP_EXIT_FAILED,
                    "%s: %s %s: %s", h->name, what, path, why);
}

static void attrsp(sftp_attributes *a) { if (*a) sftp_attributes_free(*a); }
static void filep(sftp_file *f) { if (*f) sftp_close(*f); }
static void dirp(sftp_dir *d) { if (*d) sftp_closedir(*d); }

/* ---- reading --------------------------------------------------------------- */

static int read_all(struct sp_host *h, const char *path, size_t max, unsigned char **out,
                    size_t *len, sftp_attributes *attrs, struct sp_err *e)
{
  _cleanup_(filep) sftp_file f = sftp_open(R(h)->sftp, path, O_RDONLY, 0);
  if (!f)
    return sftp_fail(h, e, "cannot open", path);
  *attrs = sftp_fstat(f);
  if (!*attrs)
    return sftp_fail(h, e, "cannot stat", path);
  if ((*attrs)->type != SSH_FILEXFER_TYPE_REGULAR)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %s is not a regular file", h->name, path);
  size_t cap = (*attrs)->size + 1, n = 0;
  if (cap > max + 1)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %s is larger than %zu bytes", h->name, path, max);
  _cleanup_free_ unsigned char *buf = sp_xmalloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap > max)
        return sp_err_set(e, SP_EXIT_FAILED, "%s: %s grew past %zu bytes", h->name, path, max);
      buf = sp_xrealloc(buf, cap * 2);
      cap *= 2;
    }
    ssize_t r = sftp_read(f, buf + n, cap - n > 65536 ? 65536 : cap - n);
    if (r < 0)
      return sftp_fail(h, e, "cannot read", path);
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *out = steal_pointer(&buf);
  *len = n;
  return 0;
}

static int r_read_blob(struct sp_host *h, const char *path, struct sp_blob *b, struct sp_err *e)
{
  memset(b, 0, sizeof *b);
  _cleanup_(attrsp) sftp_attributes a = NULL;
  const char *slash = strrchr(path, '/');
  b->name = sp_xstrdup(slash ? slash + 1 : path);
  if (read_all(h, path, 256u << 20, &b->data, &b->len, &a, e) < 0) {
    sp_blob_free(b);
    return -1;
  }
  b->mode = a->permissions & 07777;
  b->uid = a->uid;
  b->gid = a->gid;
  sp_sha256_hex(b->data, b->len, b->sha256);
  return 0;
}

static int r_read_text(struct sp_host *h, const char *path, size_t max, char **buf,
                       size_t *len, struct sp_err *e)
{
  _cleanup_(attrsp) sftp_attributes a = NULL;
  unsigned char *data = NULL;
  if (read_all(h, path, max, &data, len, &a, e) < 0) {
    errno = sftp_get_error(R(h)->sftp) == SSH_FX_NO_SUCH_FILE ? ENOENT : EACCES;
    return -1;
  }
  /* read_all keeps one spare byte for the terminator. */
  data[*len] = '\0';
  *buf = (char *)data;
  return 0;
}

static int r_list_dir(struct sp_host *h, const char *dir, struct sp_strv *names,
                      struct sp_err *e)
{
  _cleanup_(dirp) sftp_dir d = sftp_opendir(R(h)->sftp, dir);
  if (!d)
    return sftp_fail(h, e, "cannot list", dir);
  sftp_attributes a;
  while ((a = sftp_readdir(R(h)->sftp, d))) {
    if (strcmp(a->name, ".") != 0 && strcmp(a->name, "..") != 0)
      sp_strv_push(names, a->name);
    sftp_attributes_free(a);
  }
  return 0;
}

static int r_read_tree(struct sp_host *h, const char *dir, struct sp_tree *t, bool *temp,
                       struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  *temp = false;
  _cleanup_(sp_strv_free) struct sp_strv names = SP_STRV_INIT;
  if (r_list_dir(h, dir, &names, e) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < names.n; i++) {
    enum sp_tree_entry kind = sp_tree_entry_kind(names.v[i]);
    if (kind == SP_TREE_TEMP)
      *temp = true;
    if (kind != SP_TREE_FILE)
      continue;
    _cleanup_free_ char *p = sp_path_join(dir, names.v[i]);
    _cleanup_(attrsp) sftp_attributes a = p ? sftp_lstat(R(h)->sftp, p) : NULL;
    if (!a) {
      if (sftp_get_error(R(h)->sftp) == SSH_FX_NO_SUCH_FILE)
        continue; /* renamed away under us: the next read sees the new one */
      rc = sftp_fail(h, e, "cannot stat", p ? p : names.v[i]);
      break;
    }
    if (a->type != SSH_FILEXFER_TYPE_REGULAR) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "%s: %s is not a regular file", h->name, p);
      break;
    }
    t->files = sp_xreallocarray(t->files, t->n + 1, sizeof *t->files);
    if ((rc = r_read_blob(h, p, &t->files[t->n], e)) == 0)
      t->n++;
  }
  if (rc < 0) {
    sp_tree_free(t);
    return -1;
  }
  /* Same order and digest as a local read (sp_tree_read). */
  sp_tree_finish(t);
  return 0;
}

/* ---- users and file info ------------------------------------------------------- */

static int load_ids(struct sp_host *h, struct sp_err *e)
{
  size_t len;
  if (!R(h)->passwd && r_read_text(h, "/etc/passwd", 4u << 20, &R(h)->passwd, &len, e) < 0)
    return -1;
  if (!R(h)->group && r_read_text(h, "/etc/group", 4u << 20, &R(h)->group, &len, e) < 0)
    return -1;
  return 0;
}

/* name:x:id:... in a passwd or group file: by name (want_id) or by id. */
static bool lookup(const char *db, const char *name, unsigned id, char *out, size_t outlen,
                   unsigned *idout)
{
  for (const char *p = db; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    const char *c1 = strchr(p, ':'), *nl = strchr(p, '\n');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || (nl && c2 > nl))
      continue;
    unsigned v = (unsigned)strtoul(c2 + 1, NULL, 10);
    size_t nlen = (size_t)(c1 - p);
    if (name ? (strlen(name) == nlen && strncmp(p, name, nlen) == 0) : v == id) {
      if (out)
        snprintf(out, outlen, "%.*s", (int)nlen, p);
      if (idout)
        *idout = v;
      return true;
    }
  }
  return false;
}

static int r_ids(struct sp_host *h, const char *user, const char *group, uid_t *uid, gid_t *gid,
                 struct sp_err *e)
{
  if (load_ids(h, e) < 0)
    return -1;
  unsigned u, g;
  if (user[0] == '+')
    u = (unsigned)strtoul(user + 1, NULL, 10);
  else if (!lookup(R(h)->passwd, user, 0, NULL, 0, &u))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "user '%s' does not exist on %s", user, h->name);
  if (group[0] == '+')
    g = (unsigned)strtoul(group + 1, NULL, 10);
  else if (!lookup(R(h)->group, group, 0, NULL, 0, &g))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "group '%s' does not exist on %s", group, h->name);
  *uid = u;
  *gid = g;
  return 0;
}

static int r_file_info(struct sp_host *h, const char *path, struct sp_file_info *fi,
                       struct sp_err *e)
{
  memset(fi, 0, sizeof *fi);
  fi->path = sp_xstrdup(path);
  _cleanup_(attrsp) sftp_attributes a = sftp_stat(R(h)->sftp, path);
  if (!a) {
    /* Not there, or a parent we cannot search: exists as far as we know. */
    fi->exists = sftp_get_error(R(h)->sftp) != SSH_FX_NO_SUCH_FILE;
    return 0;
  }
  fi->exists = true;
  fi->uid = a->uid;
  fi->gid = a->gid;
  fi->mode = a->permissions & 07777;
  fi->size = (long long)a->size;
  if (a->type == SSH_FILEXFER_TYPE_DIRECTORY) {
    sftp_dir d = sftp_opendir(R(h)->sftp, path);
    fi->readable = d != NULL;
    if (d)
      sftp_closedir(d);
  } else {
    sftp_file f = sftp_open(R(h)->sftp, path, O_RDONLY, 0);
    fi->readable = f != NULL;
    if (f)
      sftp_close(f);
  }
  struct sp_err ignored = { 0 };
  if (load_ids(h, &ignored) < 0 ||
      !lookup(R(h)->passwd, NULL, fi->uid, fi->owner, sizeof fi->owner, NULL))
    snprintf(fi->owner, sizeof fi->owner, "%u", (unsigned)fi->uid);
  if (!R(h)->group || !lookup(R(h)->group, NULL, fi->gid, fi->group, sizeof fi->group, NULL))
    snprintf(fi->group, sizeof fi->group, "%u", (unsigned)fi->gid);
  return 0;
}

static bool r_exists(struct sp_host *h, const char *path)
{
  sftp_attributes a = sftp_lstat(R(h)->sftp, path);
  if (a)
    sftp_attributes_free(a);
  return a != NULL || sftp_get_error(R(h)->sftp) != SSH_FX_NO_SUCH_FILE;
}

/* ---- writing ------------------------------------------------------------------- */

static int r_mkdir_owned(struct sp_host *h, const char *path, mode_t mode, uid_t uid, gid_t gid,
                         struct sp_err *e)
{
  if (sftp_mkdir(R(h)->sftp, path, mode) < 0)
    return sftp_fail(h, e, "cannot create", path);
  if (sftp_chown(R(h)->sftp, path, uid, gid) < 0 || sftp_chmod(R(h)->sftp, path, mode) < 0)
    return sftp_fail(h, e, "cannot set owner and mode of", path);
  return 0;
}

/* The remote side of sp_dir_ensure: sftp_lstat never follows a symlink,
 * and the mode is set after the mkdir, whatever the server's umask. */
static int r_ensure_dir(struct sp_host *h, const char *path, mode_t mode, uid_t uid, gid_t gid,
                        struct sp_err *e)
{
  if (sftp_mkdir(R(h)->sftp, path, mode) < 0 &&
      sftp_get_error(R(h)->sftp) != SSH_FX_FILE_ALREADY_EXISTS &&
      sftp_get_error(R(h)->sftp) != SSH_FX_FAILURE)
    return sftp_fail(h, e, "cannot create", path);
  _cleanup_(attrsp) sftp_attributes a = sftp_lstat(R(h)->sftp, path);
  if (!a)
    return sftp_fail(h, e, "cannot create", path);
  if (a->type != SSH_FILEXFER_TYPE_DIRECTORY)
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %s exists and is not a directory (a symlink or a "
                      "file): remove it, stillpoint makes the directory itself", h->name, path);
  if ((a->uid != uid || a->gid != gid) && sftp_chown(R(h)->sftp, path, uid, gid) < 0)
    return sftp_fail(h, e, "cannot set the owner of", path);
  if ((a->permissions & 07777) != mode && sftp_chmod(R(h)->sftp, path, mode) < 0)
    return sftp_fail(h, e, "cannot set the mode of", path);
  return 0;
}

static int r_rm_rf(struct sp_host *h, const char *path, struct sp_err *e)
{
  _cleanup_(attrsp) sftp_attributes a = sftp_lstat(R(h)->sftp, path);
  if (!a)
    return sftp_get_error(R(h)->sftp) == SSH_FX_NO_SUCH_FILE ? 0
                                                            : sftp_fail(h, e, "cannot stat", path);
  if (a->type != SSH_FILEXFER_TYPE_DIRECTORY)
    return sftp_unlink(R(h)->sftp, path) < 0 ? sftp_fail(h, e, "cannot remove", path) : 0;
  _cleanup_(sp_strv_free) struct sp_strv names = SP_STRV_INIT;
  if (r_list_dir(h, path, &names, e) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < names.n; i++) {
    _cleanup_free_ char *p = sp_path_join(path, names.v[i]);
    rc = r_rm_rf(h, p, e);
  }
  if (rc == 0 && sftp_rmdir(R(h)->sftp, path) < 0)
    rc = sftp_fail(h, e, "cannot remove", path);
  return rc;
}

static int write_open(struct sp_host *h, const char *path, mode_t mode, sftp_file *f,
                      struct sp_err *e)
{
  *f = sftp_open(R(h)->sftp, path, O_WRONLY | O_CREAT | O_EXCL, mode);
  return *f ? 0 : sftp_fail(h, e, "cannot create", path);
}

static int write_all(struct sp_host *h, sftp_file f, const void *data, size_t len,
                     const char *path, struct sp_err *e)
{
  const char *p = data;
  while (len) {
    size_t chunk = len > 65536 ? 65536 : len;
    ssize_t w = sftp_write(f, p, chunk);
    if (w <= 0)
      return sftp_fail(h, e, "cannot write", path);
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Writes `path` through a temporary name beside it, on the host's disk
 * (fsync@openssh.com) with its owner and mode, before it takes the name:
 * a reader never sees half a file. `replace` says whether an existing
 * file may be replaced (SFTPv3 rename refuses an existing target, so it
 * is removed first). */
static int put_file(struct sp_host *h, const char *path, const void *data, size_t len,
                    mode_t mode, uid_t uid, gid_t gid, bool replace, struct sp_err *e)
{
  _cleanup_free_ char *tmp = sp_xasprintf("%s.stillpoint-tmp", path);
  sftp_unlink(R(h)->sftp, tmp);
  sftp_file f;
  if (write_open(h, tmp, mode, &f, e) < 0)
    return -1;
  int rc = write_all(h, f, data, len, tmp, e);
  if (rc == 0 && sftp_fsync(f) < 0)
    rc = sftp_fail(h, e, "cannot fsync", tmp);
  sftp_close(f);
  if (rc == 0 && (sftp_chown(R(h)->sftp, tmp, uid, gid) < 0 ||
                  sftp_chmod(R(h)->sftp, tmp, mode) < 0))
    rc = sftp_fail(h, e, "cannot set owner and mode of", tmp);
  if (rc == 0 && replace && r_exists(h, path) && sftp_unlink(R(h)->sftp, path) < 0)
    rc = sftp_fail(h, e, "cannot replace", path);
  if (rc == 0 && sftp_rename(R(h)->sftp, tmp, path) < 0)
    rc = sftp_fail(h, e, "cannot rename to", path);
  if (rc < 0)
    sftp_unlink(R(h)->sftp, tmp);
  return rc;
}

static int r_write_file(struct sp_host *h, const char *path, const void *data, size_t len,
                        mode_t mode, uid_t uid, gid_t gid, struct sp_err *e)
{
  return put_file(h, path, data, len, mode, uid, gid, true, e);
}

static int r_upload(struct sp_host *h, const char *local, const char *path, struct sp_err *e)
{
  _cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", local);
  sftp_file f;
  if (write_open(h, path, 0600, &f, e) < 0)
    return -1;
  _cleanup_free_ char *buf = sp_xmalloc(1 << 20);
  int rc = 0;
  while (rc == 0) {
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", local);
    if (n <= 0)
      break;
    rc = write_all(h, f, buf, (size_t)n, path, e);
  }
  if (rc == 0 && sftp_fsync(f) < 0)
    rc = sftp_fail(h, e, "cannot fsync", path);
  sftp_close(f);
  if (rc < 0)
    sftp_unlink(R(h)->sftp, path);
  return rc;
}

/* SFTP version 3's rename refuses an existing target (OpenSSH's server
 * links, then unlinks): never replacing, as the local one. */
static int r_rename(struct sp_host *h, const char *from, const char *to, struct sp_err *e)
{
  if (r_exists(h, to))
    return sp_err_set(e, SP_EXIT_FAILED, "%s: %s exists: not replacing it", h->name, to);
  return sftp_rename(R(h)->sftp, from, to) < 0 ? sftp_fail(h, e, "cannot rename", from) : 0;
}

static int r_create_file(struct sp_host *h, const char *path, const void *data, size_t len,
                         mode_t mode, uid_t uid, gid_t gid, struct sp_err *e)
{
  if (r_exists(h, path))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s: %s exists: not replacing it", h->name, path);
  return put_file(h, path, data, len, mode, uid, gid, false, e);
}

static void r_close(struct sp_host *h)
{
  struct remote *r = R(h);
  if (!r)
    return;
  if (r->sftp)
    sftp_free(r->sftp);
  if (r->ssh) {
    ssh_disconnect(r->ssh);
    ssh_free(r->ssh);
  }
  free(r->passwd);
  free(r->group);
  free(r);
  h->impl = NULL;
}

static const struct sp_host_ops ssh_ops = {
  .file_info = r_file_info,
  .list_dir = r_list_dir,
  .read_blob = r_read_blob,
  .read_tree = r_read_tree,
  .read_text = r_read_text,
  .ids = r_ids,
  .mkdir_owned = r_mkdir_owned,
  .ensure_dir = r_ensure_dir,
  .rm_rf = r_rm_rf,
  .write_file = r_write_file,
  .upload = r_upload,
  .create_file = r_create_file,
  .rename = r_rename,
  .exists = r_exists,
  .close = r_close,
};

/* ---- opening -------------------------------------------------------------------- */

static int check_host_key(ssh_session s, const char *host, struct sp_err *e)
{
  ssh_key key = NULL;
  unsigned char *hash = NULL;
  size_t hlen = 0;
  char *fp = NULL;
  if (ssh_get_server_publickey(s, &key) == 0 &&
      ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
  enum ssh_known_hosts_e state = ssh_session_is_known_server(s);
  int rc = 0;
  switch (state) {
  case SSH_KNOWN_HOSTS_OK:
    break;
  case SSH_KNOWN_HOSTS_CHANGED:
  case SSH_KNOWN_HOSTS_OTHER:
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT,
                    "the host key of %s has CHANGED (it now shows %s): someone may be in the "
                    "middle, or the host was reinstalled; check its key on the console, then "
                    "replace the old one (ssh-keygen -R %s)", host, fp ? fp : "?", host);
    break;
  case SSH_KNOWN_HOSTS_UNKNOWN:
  case SSH_KNOWN_HOSTS_NOT_FOUND:
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT,
                    "the host key of %s is not known (it shows %s): stillpoint never accepts "
                    "one silently; check it on the host's console (ssh-keygen -lf "
                    "/etc/ssh/ssh_host_*_key.pub) and add it to known_hosts (ssh root@%s once)",
                    host, fp ? fp : "?", host);
    break;
  default:
    rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot check the host key of %s: %s", host,
                    ssh_get_error(s));
  }
  ssh_string_free_char(fp);
  ssh_clean_pubkey_hash(&hash);
  ssh_key_free(key);
  return rc;
}

static int authenticate(ssh_session s, const struct remote_target *t, struct sp_err *e)
{
  int r;
  if (t->keyfile[0]) {
    ssh_key key = NULL;
    if (ssh_pki_import_privkey_file(t->keyfile, NULL, NULL, NULL, &key) != SSH_OK)
      return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot read the SSH key %s (it must be "
                        "unencrypted, or in an ssh-agent)", t->keyfile);
    r = ssh_userauth_publickey(s, NULL, key);
    ssh_key_free(key);
  } else {
    r = ssh_userauth_publickey_auto(s, NULL, NULL);
  }
  if (r != SSH_AUTH_SUCCESS)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s refused the SSH login of %s: give a key with "
                      "--ssh-key or ssh_key, or load one into ssh-agent", t->host,
                      t->user[0] ? t->user : "this user");
  return 0;
}

int remote_host_open(struct sp_host *h, const struct remote_target *t, struct sp_err *e)
{
  memset(h, 0, sizeof *h);
  struct remote *r = sp_xcalloc(1, sizeof *r);
  h->ops = &ssh_ops;
  h->impl = r;
  h->remote = true;
  snprintf(h->name, sizeof h->name, "%s", t->host);
  r->ssh = ssh_new();
  if (!r->ssh)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "ssh");
  long timeout = 15;
  ssh_options_set(r->ssh, SSH_OPTIONS_HOST, t->host);
  /* ~/.ssh/config first, then what the URI says explicitly. */
  ssh_options_parse_config(r->ssh, NULL);
  if (t->user[0])
    ssh_options_set(r->ssh, SSH_OPTIONS_USER, t->user);
  if (t->port)
    ssh_options_set(r->ssh, SSH_OPTIONS_PORT, &t->port);
  ssh_options_set(r->ssh, SSH_OPTIONS_TIMEOUT, &timeout);
  if (ssh_connect(r->ssh) != SSH_OK)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "cannot reach %s over SSH: %s", t->host,
                      ssh_get_error(r->ssh));
  if (check_host_key(r->ssh, t->host, e) < 0 || authenticate(r->ssh, t, e) < 0)
    return -1;
  r->sftp = sftp_new(r->ssh);
  if (!r->sftp || sftp_init(r->sftp) != SSH_OK)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s offers no SFTP (enable the sftp subsystem of "
                      "its sshd): %s", t->host, ssh_get_error(r->ssh));
  return 0;
}
