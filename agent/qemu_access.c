#include "qemu_access.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"
#include "own_dirs.h"
#include "state_locator.h"

/* The value part of "Key:\t..." in /proc/<pid>/status, or NULL. */
static const char *status_field(const char *text, const char *key)
{
  size_t n = strlen(key);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, key, n) == 0 && p[n] == ':')
      return p + n + 1;
  return NULL;
}

/* Up to max unsigned numbers of one line. */
static size_t line_numbers(const char *p, unsigned long *out, size_t max)
{
  size_t n = 0;
  while (*p && *p != '\n' && n < max) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (!isdigit((unsigned char)*p))
      break;
    char *end;
    errno = 0;
    unsigned long v = strtoul(p, &end, 10);
    if (errno || v > UINT_MAX)
      break;
    out[n++] = v;
    p = end;
  }
  return n;
}

int qemu_creds_from_status(const char *text, struct qemu_creds *c)
{
  memset(c, 0, sizeof *c);
  const char *u = status_field(text, "Uid"), *g = status_field(text, "Gid");
  const char *gs = status_field(text, "Groups");
  unsigned long ids[QEMU_MAX_GROUPS];
  /* real, effective, saved, file system: files are opened with the last. */
  if (!u || !g || line_numbers(u, ids, 4) != 4)
    return -1;
  c->uid = (uid_t)ids[3];
  if (line_numbers(g, ids, 4) != 4)
    return -1;
  c->gid = (gid_t)ids[3];
  if (gs) {
    size_t n = line_numbers(gs, ids, QEMU_MAX_GROUPS);
    for (size_t i = 0; i < n; i++)
      c->groups[c->ngroups++] = (gid_t)ids[i];
  }
  return 0;
}

static bool in_list(const char *members, size_t len, const char *user)
{
  size_t ul = strlen(user);
  const char *p = members, *end = members + len;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
    if (n == ul && strncmp(p, user, n) == 0)
      return true;
    p += n + 1;
  }
  return false;
}

void qemu_creds_add_member_groups(const char *group_file, const char *user,
                                  struct qemu_creds *c)
{
  for (const char *line = group_file; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    /* name:password:gid:member,member */
    const char *f[4] = { line };
    size_t nf = 1;
    for (const char *p = line; p < line + len && nf < 4; p++)
      if (*p == ':')
        f[nf++] = p + 1;
    if (nf == 4 && c->ngroups < QEMU_MAX_GROUPS && isdigit((unsigned char)*f[2]) &&
        in_list(f[3], (size_t)(line + len - f[3]), user))
      c->groups[c->ngroups++] = (gid_t)strtoul(f[2], NULL, 10);
    line = nl ? nl + 1 : NULL;
  }
}

bool qemu_may_search(const struct qemu_creds *c, uid_t uid, gid_t gid, mode_t mode)
{
  if (c->uid == 0)
    return true;
  /* Owner, then group, then other: the first class that matches decides,
   * as the kernel does (an owner without x is refused even if other has it). */
  if (c->uid == uid)
    return mode & S_IXUSR;
  bool member = c->gid == gid;
  for (size_t i = 0; !member && i < c->ngroups; i++)
    member = c->groups[i] == gid;
  if (member)
    return mode & S_IXGRP;
  return mode & S_IXOTH;
}

bool qemu_apparmor_rule_included(const char *text)
{
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
    const char *p = buf;
    while (isspace((unsigned char)*p))
      p++;
    if (*p == '#')
      p++; /* "#include" is the old spelling of the directive, not a comment */
    if (strncmp(p, "include", 7) == 0) {
      p += 7;
      while (isspace((unsigned char)*p))
        p++;
      if (strncmp(p, "if exists", 9) == 0)
        p += 9;
      while (isspace((unsigned char)*p))
        p++;
      if (strncmp(p, "<abstractions/stillpoint-qemu>", 30) == 0)
        return true;
    }
    line = nl ? nl + 1 : NULL;
  }
  return false;
}

/* From qemu.conf's user and group, for a VM with no QEMU process. */
int qemu_creds_of_conf(struct sp_host *h, const struct sp_qemu_conf *qc,
                           struct qemu_creds *c, struct sp_err *e)
{
  memset(c, 0, sizeof *c);
  if (h->ops->ids(h, qc->user, qc->group, &c->uid, &c->gid, e) < 0)
    return -1;
  _cleanup_free_ char *groups = NULL;
  size_t len;
  struct sp_err ignored = { 0 };
  /* libvirt starts QEMU with initgroups() of that user: its memberships count. */
  if (qc->user[0] != '+' && h->ops->read_text(h, "/etc/group", 4u << 20, &groups, &len,
                                               &ignored) == 0)
    qemu_creds_add_member_groups(groups, qc->user, c);
  snprintf(c->who, sizeof c->who, "%.64s:%.64s (from qemu.conf on %.256s)", qc->user, qc->group, h->name);
  return 0;
}

int qemu_creds_get(struct sp_host *h, const struct sp_domain *d, const struct sp_qemu_conf *qc,
                   struct qemu_creds *c, struct sp_err *e)
{
  char path[PATH_MAX];
  _cleanup_free_ char *pid = NULL, *status = NULL;
  size_t len;
  struct sp_err ignored = { 0 };
  /* libvirt forbids '/' in names; checked anyway, the name becomes a path. */
  if (!d->running || !sp_name_ok(d->name) ||
      snprintf(path, sizeof path, "/run/libvirt/qemu/%s.pid", d->name) >= (int)sizeof path ||
      h->ops->read_text(h, path, 64, &pid, &len, &ignored) < 0)
    return qemu_creds_of_conf(h, qc, c, e);
  long n = strtol(pid, NULL, 10);
  snprintf(path, sizeof path, "/proc/%ld/status", n);
  if (n <= 0 || h->ops->read_text(h, path, 64 << 10, &status, &len, &ignored) < 0 ||
      qemu_creds_from_status(status, c) < 0)
    return qemu_creds_of_conf(h, qc, c, e);
  snprintf(c->who, sizeof c->who, "uid %u gid %u (its running process %ld on %.256s)",
           (unsigned)c->uid, (unsigned)c->gid, n, h->name);
  return 0;
}

/* The fix for one blocking directory: stillpoint's own ones repair
 * themselves when stillpoint runs as root. */
static void blocked(const struct sp_file_info *fi, const struct qemu_creds *c, const char *key,
                    const char *dir, char *why, size_t size)
{
  const struct sp_own_dir *own = sp_own_dir_find(fi->path);
  if (own)
    snprintf(why, size, "QEMU (%s) cannot reach %s %s: %s is %s:%s mode %04o, it must be %04o "
             "root:root; run stillpoint as root, which repairs its own directories (or "
             "`chmod %04o %s`)", c->who, key, dir, fi->path, fi->owner, fi->group,
             (unsigned)fi->mode, (unsigned)own->mode, (unsigned)own->mode, fi->path);
  else
    snprintf(why, size, "QEMU (%s) cannot reach %s %s: %s is %s:%s mode %04o and lets it not "
             "pass; `chmod o+x %s` (or give one of QEMU's groups search permission), or choose "
             "another %s that QEMU can reach", c->who, key, dir, fi->path, fi->owner, fi->group,
             (unsigned)fi->mode, fi->path, key);
}

bool qemu_can_reach(struct sp_host *h, const struct qemu_creds *c, const char *key,
                    const char *dir, bool can_repair, char *why, size_t size)
{
  char buf[PATH_MAX];
  if (c->uid == 0 || snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
    return true;
  for (char *p = buf;; p++) {
    if (*p != '/' && *p)
      continue;
    char ch = *p;
    *p = '\0';
    const char *comp = buf[0] ? buf : "/";
    struct sp_file_info fi = { 0 };
    struct sp_err ignored = { 0 };
    const struct sp_own_dir *own = sp_own_dir_find(comp);
    bool ok = true, known = h->ops->file_info(h, comp, &fi, &ignored) == 0 && fi.exists &&
                            fi.owner[0];
    if (!known) {
      /* Missing: stillpoint makes it (0711); unknown: this user cannot
       * see it, and preflight's other checks say so. */
    } else if (own && can_repair) {
      ok = qemu_may_search(c, 0, 0, own->mode);
    } else {
      ok = qemu_may_search(c, fi.uid, fi.gid, fi.mode);
    }
    if (!ok)
      blocked(&fi, c, key, dir, why, size);
    bool missing = !fi.exists;
    sp_file_info_free(&fi);
    if (!ok)
      return false;
    if (missing || !(*p = ch))
      break;
  }
  return true;
}
