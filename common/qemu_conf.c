#include "qemu_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"
#include "xalloc.h"

static void set(char **slot, const char *v, size_t n)
{
  free(*slot);
  *slot = sp_xstrndup(v, n);
}

/* One "key = value" line; value quoted or bare (libvirt accepts both for
 * numbers, we keep the text). */
static void parse_line(const char *p, struct sp_qemu_conf *qc)
{
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '#' || !*p)
    return;
  const char *k = p;
  while (isalnum((unsigned char)*p) || *p == '_')
    p++;
  size_t klen = (size_t)(p - k);
  while (isspace((unsigned char)*p))
    p++;
  if (*p != '=')
    return; /* lists and other syntax we do not need */
  p++;
  while (isspace((unsigned char)*p))
    p++;
  const char *v = p;
  size_t vlen;
  if (*p == '"') {
    v = ++p;
    const char *q = strchr(p, '"');
    if (!q)
      return;
    vlen = (size_t)(q - v);
  } else {
    while (*p && !isspace((unsigned char)*p) && *p != '#')
      p++;
    vlen = (size_t)(p - v);
  }
  struct { const char *key; char **slot; } map[] = {
    { "backup_tls_x509_cert_dir", &qc->backup_tls_dir },
    { "default_tls_x509_cert_dir", &qc->default_tls_dir },
    { "user", &qc->user },
    { "group", &qc->group },
    { "swtpm_user", &qc->swtpm_user },
    { "swtpm_group", &qc->swtpm_group },
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strlen(map[i].key) == klen && strncmp(map[i].key, k, klen) == 0)
      set(map[i].slot, v, vlen);
}

static void set_defaults(struct sp_qemu_conf *qc)
{
  /* libvirt: backup_tls_x509_cert_dir, else /etc/pki/libvirt-backup if it
   * exists (sp_host_qemu_conf_read), else default_tls_x509_cert_dir, else
   * /etc/pki/qemu. */
  qc->backup_tls_dir_set = qc->backup_tls_dir != NULL;
  if (!qc->backup_tls_dir)
    qc->backup_tls_dir = sp_xstrdup(qc->default_tls_dir ? qc->default_tls_dir : "/etc/pki/qemu");
  /* Debian's libvirt build: qemu runs as libvirt-qemu, swtpm as tss. */
  if (!qc->user)
    set(&qc->user, "libvirt-qemu", 12);
  if (!qc->group)
    set(&qc->group, "libvirt-qemu", 12);
  if (!qc->swtpm_user)
    set(&qc->swtpm_user, "tss", 3);
  if (!qc->swtpm_group)
    set(&qc->swtpm_group, "tss", 3);
}

int sp_qemu_conf_parse(const char *text, struct sp_qemu_conf *qc, struct sp_err *e)
{
  memset(qc, 0, sizeof *qc);
  const char *p = text;
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    _cleanup_free_ char *line = sp_xstrndup(p, n);
    parse_line(line, qc);
    p = nl ? nl + 1 : NULL;
  }
  set_defaults(qc);
  qc->from_file = true;
  return 0;
}

int sp_qemu_conf_read(const char *path, struct sp_qemu_conf *qc, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_qemu_conf_read(&local, path, qc, e);
}

int sp_host_qemu_conf_read(struct sp_host *h, const char *path, struct sp_qemu_conf *qc,
                           struct sp_err *e)
{
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (h->ops->read_text(h, path, 4u << 20, &buf, &len, e) < 0) {
    /* mode 0600 root: a non-root user cannot read it, which is normal. */
    sp_err_clear(e);
    memset(qc, 0, sizeof *qc);
    set_defaults(qc);
  } else if (sp_qemu_conf_parse(buf, qc, e) < 0) {
    return -1;
  }
  if (!qc->backup_tls_dir_set && h->ops->exists(h, SP_LIBVIRT_BACKUP_TLS_DIR)) {
    free(qc->backup_tls_dir);
    qc->backup_tls_dir = sp_xstrdup(SP_LIBVIRT_BACKUP_TLS_DIR);
  }
  return 0;
}

void sp_qemu_conf_free(struct sp_qemu_conf *qc)
{
  free(qc->backup_tls_dir);
  free(qc->default_tls_dir);
  free(qc->user);
  free(qc->group);
  free(qc->swtpm_user);
  free(qc->swtpm_group);
  memset(qc, 0, sizeof *qc);
}
