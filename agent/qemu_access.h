/* Whether QEMU itself can get where a backup job puts its files: the
 * NBD socket in a directory below /run/stillpoint and the scratch files
 * below scratch_dir are created and opened by the QEMU process, with its
 * own user and groups and under its security driver (AppArmor, SELinux),
 * inside the pause window.  A directory it cannot pass fails
 * virDomainBackupBegin there ("Failed to unlink socket ...: Permission
 * denied"); this module finds that before anything is paused.
 *
 * Who QEMU is comes from the running QEMU process when there is one
 * (/proc/<pid>/status: per-VM <seclabel> and initgroups() decide it), and
 * from qemu.conf's user and group otherwise. */
#ifndef SP_QEMU_ACCESS_H
#define SP_QEMU_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "domain_xml.h"
#include "err.h"
#include "qemu_conf.h"

struct sp_host;

#define QEMU_MAX_GROUPS 64

struct qemu_creds {
  uid_t uid;
  gid_t gid;
  gid_t groups[QEMU_MAX_GROUPS]; /* supplementary */
  size_t ngroups;
  char who[512]; /* "libvirt-qemu:libvirt-qemu (uid 64055), from QEMU pid 1234" */
};

/* "Uid:" "Gid:" "Groups:" of /proc/<pid>/status (effective ids);
 * -1 when a line is missing or malformed. */
int qemu_creds_from_status(const char *text, struct qemu_creds *c);
/* Adds the groups of /etc/group (text) that list user as a member. */
void qemu_creds_add_member_groups(const char *group_file, const char *user,
                                  struct qemu_creds *c);
/* Whether c may search (pass through) a directory of that owner and mode. */
bool qemu_may_search(const struct qemu_creds *c, uid_t uid, gid_t gid, mode_t mode);
/* Whether an AppArmor local include file (text) includes stillpoint's
 * abstraction (a line `include <abstractions/stillpoint-qemu>`, with or
 * without '#' or `if exists`). */
bool qemu_apparmor_rule_included(const char *text);

#define SP_APPARMOR_LOCAL "/etc/apparmor.d/local/abstractions/libvirt-qemu"
#define SP_APPARMOR_RULE "/etc/apparmor.d/abstractions/stillpoint-qemu"

/* QEMU's credentials per qemu.conf (a VM that does not run yet). */
int qemu_creds_of_conf(struct sp_host *h, const struct sp_qemu_conf *qc, struct qemu_creds *c,
                       struct sp_err *e);
/* QEMU's credentials for domain d on host h. */
int qemu_creds_get(struct sp_host *h, const struct sp_domain *d, const struct sp_qemu_conf *qc,
                   struct qemu_creds *c, struct sp_err *e);

/* Walks every component of dir (which need not exist yet: what is missing
 * will be made 0711 by stillpoint).  Returns false with why (a sentence
 * naming the directory, owner, mode and the fix) when QEMU cannot pass.
 * can_repair: this process makes stillpoint's own directories right
 * before use (own_dirs.h), so those are judged by their intended mode. */
bool qemu_can_reach(struct sp_host *h, const struct qemu_creds *c, const char *key,
                    const char *dir, bool can_repair, char *why, size_t size);

#endif
