/* The few keys of libvirt's /etc/libvirt/qemu.conf that decide who owns
 * the state files stillpoint reads and writes back.  Never assumed: tss on
 * Debian and Fedora, swtpm on Ubuntu. */
#ifndef SP_QEMU_CONF_H
#define SP_QEMU_CONF_H

#include <stdbool.h>

#include "err.h"

#define SP_QEMU_CONF_PATH "/etc/libvirt/qemu.conf"
#define SP_LIBVIRT_BACKUP_TLS_DIR "/etc/pki/libvirt-backup"

struct sp_qemu_conf {
  char *user, *group;             /* QEMU's own user (owner of NVRAM files) */
  char *swtpm_user, *swtpm_group; /* owner of the TPM state tree */
  char *backup_tls_dir;  /* NBD TLS certificates of backup jobs (transport = tcp) */
  char *default_tls_dir; /* default_tls_x509_cert_dir, the fallback of the one above */
  bool backup_tls_dir_set;        /* backup_tls_x509_cert_dir is in the file */
  bool from_file;                 /* false: the file was unreadable, built-in defaults */
};

/* Parses text in libvirt's conf syntax (key = "value", # comments).
 * Unset keys keep libvirt's Debian build defaults. */
int sp_qemu_conf_parse(const char *text, struct sp_qemu_conf *qc, struct sp_err *e);
/* Reads the file; an unreadable file (non-root) is not an error: from_file
 * stays false and the caller falls back to the owners seen on disk. */
int sp_qemu_conf_read(const char *path, struct sp_qemu_conf *qc, struct sp_err *e);
/* The same for qemu.conf of another host (host.h).  Also applies libvirt's
 * own default that needs the host: without backup_tls_x509_cert_dir,
 * /etc/pki/libvirt-backup when it exists (libvirt looks once, at its start). */
struct sp_host;
int sp_host_qemu_conf_read(struct sp_host *h, const char *path, struct sp_qemu_conf *qc,
                           struct sp_err *e);
void sp_qemu_conf_free(struct sp_qemu_conf *qc);

#endif
