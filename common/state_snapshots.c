#include "state_snapshots.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "own_dirs.h"
#include "snapshot_meta.h"
#include "strv.h"
#include "uuid.h"
#include "xalloc.h"

#define PARTIAL_SUFFIX ".partial"

void sp_snapshot_free(struct sp_snapshot *s)
{
  free(s->id);
  free(s->created);
  free(s->domain);
  free(s->uuid);
  free(s->event);
  free(s->tpm_version);
  free(s->tpm_subdir);
  free(s->tpm_state_dir);
  free(s->tpm_secret_uuid);
  sp_tree_free(&s->tpm);
  free(s->tpm_stat);
  free(s->nvram_path);
  sp_blob_free(&s->nvram);
  free(s->xml);
  memset(s, 0, sizeof *s);
}

void sp_snap_ids_free(char **ids, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
}

bool sp_snap_id_ok(const char *id)
{
  /* YYYYMMDDTHHMMSSZ, then optionally -N for a second snapshot in one second */
  static const char shape[] = "ddddddddTddddddZ";
  if (!id || strlen(id) < sizeof shape - 1)
    return false;
  for (size_t i = 0; i < sizeof shape - 1; i++)
    if (shape[i] == 'd' ? !isdigit((unsigned char)id[i]) : id[i] != shape[i])
      return false;
  const char *rest = id + sizeof shape - 1;
  if (!*rest)
    return true;
  size_t digits = strspn(rest + 1, "0123456789");
  return rest[0] == '-' && digits >= 1 && digits <= 4 && !rest[1 + digits];
}

/* <state_dir>/<uuid> and what leads to it: the hook's first snapshot is
 * often the first thing stillpoint ever writes on a host, and must not
 * leave /var/lib/stillpoint closed to QEMU's scratch files (own_dirs.h). */
static int snap_dir_prepare(const char *vdir, struct sp_err *e)
{
  return sp_dirs_prepare_local(vdir, 0700, e);
}

/* <state_dir>/<uuid>, refusing anything but a UUID as the component. */
static char *vm_dir(const char *state_dir, const char *uuid, struct sp_err *e)
{
  if (!sp_uuid_ok(uuid)) {
    sp_err_set(e, SP_EXIT_FAILED, "'%s' is not a UUID: refusing it as a path", uuid ? uuid : "");
    return NULL;
  }
  return sp_path_join(state_dir, uuid);
}

static int by_version(const void *a, const void *b)
{
  /* strverscmp: ...Z < ...Z-2 < ...Z-10 */
  return strverscmp(*(char *const *)a, *(char *const *)b);
}

int sp_snap_list(const char *state_dir, const char *uuid, char ***ids, size_t *n,
                 struct sp_err *e)
{
  *ids = NULL;
  *n = 0;
  _cleanup_free_ char *dir = vm_dir(state_dir, uuid, e);
  if (!dir)
    return -1;
  _cleanup_closedir_ DIR *d = opendir(dir);
  if (!d && errno == ENOENT)
    return 0;
  if (!d)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", dir);
  _cleanup_(sp_strv_free) struct sp_strv list = SP_STRV_INIT;
  struct dirent *de;
  while ((de = readdir(d)))
    if (sp_snap_id_ok(de->d_name))
      sp_strv_push(&list, de->d_name);
  if (list.n)
    qsort(list.v, list.n, sizeof *list.v, by_version);
  *ids = sp_strv_steal(&list, n);
  return 0;
}

/* --- writing -------------------------------------------------------- */

/* A .<id>.partial directory that is removed unless committed. */
struct partial {
  char *path;
  bool committed;
};

static void partial_drop(struct partial *p)
{
  if (p->path && !p->committed) {
    struct sp_err ignored = { 0 };
    sp_rm_rf(p->path, &ignored);
  }
  free(p->path);
}

/* Picks a free id for the current second and creates its partial dir. */
static int make_partial(int vfd, const char *vdir, char **id, struct partial *p,
                        char **created, struct sp_err *e)
{
  time_t now = time(NULL);
  struct tm tm;
  char base[32], iso[32];
  gmtime_r(&now, &tm);
  strftime(base, sizeof base, "%Y%m%dT%H%M%SZ", &tm);
  strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
  for (int seq = 1; seq < 10000; seq++) {
    char cand[48], part[64];
    if (seq == 1)
      snprintf(cand, sizeof cand, "%s", base);
    else
      snprintf(cand, sizeof cand, "%s-%d", base, seq);
    snprintf(part, sizeof part, ".%s" PARTIAL_SUFFIX, cand);
    struct stat st;
    if (fstatat(vfd, cand, &st, AT_SYMLINK_NOFOLLOW) == 0)
      continue;
    if (mkdirat(vfd, part, 0700) < 0) {
      if (errno == EEXIST)
        continue;
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s/%s", vdir, part);
    }
    p->path = sp_path_join(vdir, part);
    *id = sp_xstrdup(cand);
    *created = sp_xstrdup(iso);
    return 0;
  }
  return sp_err_set(e, SP_EXIT_FAILED, "%s: no free snapshot name for %s", vdir, base);
}

/* mkdir 0700 + open, below a directory fd. */
static int subdir(int parent, const char *name, struct sp_err *e)
{
  if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create directory %s", name);
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open directory %s", name);
  return fd;
}

/* One SHA256SUMS line; names with a backslash or newline would need
 * sha256sum's escaping and never occur in swtpm or libvirt file names. */
static int sums_add(char **sums, const char *sha, const char *prefix, const char *name,
                    struct sp_err *e)
{
  if (strpbrk(name, "\\\n"))
    return sp_err_set(e, SP_EXIT_FAILED, "file name '%s' cannot go into SHA256SUMS", name);
  char *line = sp_xasprintf("%s%s  %s%s\n", *sums ? *sums : "", sha, prefix, name);
  free(*sums);
  *sums = line;
  return 0;
}

/* Writes one file (fsynced) and adds its SHA256SUMS line; known is its
 * hash when the capture already computed it (4 MiB of NVRAM costs ms). */
static int write_fsync(int dfd, const char *name, const void *data, size_t len,
                       const char *known, char **sums, const char *prefix, struct sp_err *e)
{
  char sha[SP_SHA256_HEX_LEN + 1];
  if (known)
    memcpy(sha, known, sizeof sha);
  else
    sp_sha256_hex(data, len, sha);
  if (sp_write_file_at(dfd, name, data, len, 0600, e) < 0)
    return -1;
  return sums ? sums_add(sums, sha, prefix, name, e) : 0;
}

static int write_tpm(int pfd, const struct sp_snapshot *s, char **sums, struct sp_err *e)
{
  _cleanup_close_ int tfd = subdir(pfd, "tpm", e);
  if (tfd < 0)
    return -1;
  _cleanup_close_ int sfd = subdir(tfd, s->tpm_subdir, e);
  if (sfd < 0)
    return -1;
  char prefix[32];
  snprintf(prefix, sizeof prefix, "tpm/%s/", s->tpm_subdir);
  for (size_t i = 0; i < s->tpm.n; i++) {
    const struct sp_blob *b = &s->tpm.files[i];
    if (write_fsync(sfd, b->name, b->data, b->len, b->sha256, sums, prefix, e) < 0)
      return -1;
  }
  if (fsync(sfd) < 0 || fsync(tfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync the TPM directory");
  return 0;
}

static int write_nvram(int pfd, const struct sp_snapshot *s, char **sums, struct sp_err *e)
{
  _cleanup_close_ int nfd = subdir(pfd, "nvram", e);
  if (nfd < 0)
    return -1;
  if (write_fsync(nfd, s->nvram.name, s->nvram.data, s->nvram.len, s->nvram.sha256, sums,
                  "nvram/", e) < 0)
    return -1;
  if (fsync(nfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync the NVRAM directory");
  return 0;
}

static int write_content(int pfd, const struct sp_snapshot *s, struct sp_err *e)
{
  _cleanup_free_ char *sums = NULL;
  _cleanup_free_ char *json = sp_snap_meta_format(s);
  if (!json)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "snapshot.json");
  if (s->has_tpm && (!s->tpm_subdir || (strcmp(s->tpm_subdir, "tpm2") != 0 &&
                                        strcmp(s->tpm_subdir, "tpm1.2") != 0)))
    return sp_err_set(e, SP_EXIT_FAILED, "TPM subdir '%s' is not tpm2 or tpm1.2",
                      s->tpm_subdir ? s->tpm_subdir : "");
  if ((s->has_tpm && write_tpm(pfd, s, &sums, e) < 0) ||
      (s->has_nvram && write_nvram(pfd, s, &sums, e) < 0) ||
      (s->xml && write_fsync(pfd, "domain.xml", s->xml, s->xml_len, NULL, &sums, "", e) < 0) ||
      write_fsync(pfd, "snapshot.json", json, strlen(json), NULL, &sums, "", e) < 0 ||
      write_fsync(pfd, "SHA256SUMS", sums, strlen(sums), NULL, NULL, "", e) < 0)
    return -1;
  if (fsync(pfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync the snapshot directory");
  return 0;
}

int sp_snap_write(const char *state_dir, struct sp_snapshot *s, struct sp_err *e)
{
  _cleanup_free_ char *vdir = vm_dir(state_dir, s->uuid, e);
  if (!vdir || snap_dir_prepare(vdir, e) < 0)
    return -1;
  _cleanup_close_ int vfd = open(vdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (vfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", vdir);
  _cleanup_(partial_drop) struct partial p = { 0 };
  free(s->id);
  free(s->created);
  s->id = s->created = NULL;
  if (make_partial(vfd, vdir, &s->id, &p, &s->created, e) < 0)
    return -1;
  _cleanup_close_ int pfd = open(p.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", p.path);
  if (write_content(pfd, s, e) < 0)
    return sp_err_prefix(e, "snapshot %s/%s", vdir, s->id);
  const char *part = strrchr(p.path, '/') + 1;
  if (renameat(vfd, part, vfd, s->id) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot rename %s to %s", p.path, s->id);
  p.committed = true;
  if (fsync(vfd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", vdir);
  return 0;
}

/* --- reading -------------------------------------------------------- */

static char *snap_path(const char *state_dir, const char *uuid, const char *id, const char *rel,
                       struct sp_err *e)
{
  _cleanup_free_ char *vdir = vm_dir(state_dir, uuid, e);
  if (!vdir)
    return NULL;
  if (!sp_snap_id_ok(id)) {
    sp_err_set(e, SP_EXIT_USAGE, "'%s' is not a snapshot name (like 20261126T063000Z)", id);
    return NULL;
  }
  return sp_xasprintf("%s/%s%s%s", vdir, id, rel ? "/" : "", rel ? rel : "");
}

/* Reads the files back and checks them against the metadata. */
static int read_data(const char *sdir, unsigned parts, struct sp_snapshot *s, struct sp_err *e)
{
  _cleanup_free_ char *xml_path = sp_path_join(sdir, "domain.xml");
  if (sp_exists(xml_path) && sp_read_file(xml_path, 16u << 20, &s->xml, &s->xml_len, e) < 0)
    return -1;
  if (s->has_tpm && (parts & SP_SNAP_TPM)) {
    char rel[32];
    snprintf(rel, sizeof rel, "tpm/%s", s->tpm_subdir);
    _cleanup_free_ char *tdir = sp_path_join(sdir, rel);
    struct sp_tree t;
    bool temp;
    if (sp_tree_read(tdir, &t, &temp, e) < 0)
      return -1;
    bool same = strcmp(t.digest, s->tpm.digest) == 0;
    /* Owners and modes of the source, as recorded, not those of the copy. */
    for (size_t i = 0; same && i < t.n; i++)
      for (size_t j = 0; j < s->tpm.n; j++)
        if (strcmp(t.files[i].name, s->tpm.files[j].name) == 0) {
          t.files[i].mode = s->tpm.files[j].mode;
          t.files[i].uid = s->tpm.files[j].uid;
          t.files[i].gid = s->tpm.files[j].gid;
        }
    sp_tree_free(&s->tpm);
    s->tpm = t;
    if (!same)
      return sp_err_set(e, SP_EXIT_FAILED, "%s: the TPM files do not match the SHA-256 "
                        "recorded in snapshot.json: the snapshot is damaged", tdir);
  }
  if (s->has_nvram && (parts & SP_SNAP_NVRAM)) {
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "nvram/%s", s->nvram.name);
    _cleanup_free_ char *np = sp_path_join(sdir, rel);
    struct sp_blob b;
    if (sp_blob_map(np, &b, e) < 0)
      return -1;
    bool same = strcmp(b.sha256, s->nvram.sha256) == 0;
    /* Keep the source's owner and mode from the metadata, not the copy's. */
    b.uid = s->nvram.uid;
    b.gid = s->nvram.gid;
    b.mode = s->nvram.mode;
    sp_blob_free(&s->nvram);
    s->nvram = b;
    if (!same)
      return sp_err_set(e, SP_EXIT_FAILED, "%s does not match the SHA-256 recorded in "
                        "snapshot.json: the snapshot is damaged", np);
  }
  return 0;
}

int sp_snap_read(const char *state_dir, const char *uuid, const char *id, unsigned parts,
                 struct sp_snapshot *s, struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  _cleanup_free_ char *sdir = snap_path(state_dir, uuid, id, NULL, e);
  /* Nothing read yet (and gcc 12's -fanalyzer took text below for
   * uninitialized on this path when it was folded into rc). */
  if (!sdir)
    return -1;
  _cleanup_free_ char *json_path = sp_path_join(sdir, "snapshot.json");
  _cleanup_free_ char *pin_path = sp_path_join(sdir, "PINNED");
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int rc = sp_read_file(json_path, 1u << 20, &text, &len, e);
  if (rc == 0 && sp_snap_meta_parse(text, len, s, e) < 0)
    rc = sp_err_prefix(e, "%s", json_path);
  if (rc == 0 && (strcmp(s->id, id) != 0 || strcmp(s->uuid, uuid) != 0))
    rc = sp_err_set(e, SP_EXIT_FAILED, "%s names another snapshot (%s of %s)", json_path,
                    s->id, s->uuid);
  if (rc == 0) {
    s->pinned = sp_exists(pin_path);
    if (parts)
      rc = read_data(sdir, parts, s, e);
  }
  if (rc < 0)
    sp_snapshot_free(s);
  return rc;
}

int sp_snap_newest(const char *state_dir, const char *uuid, bool need_tpm,
                   struct sp_snapshot *s, bool *found, struct sp_err *e)
{
  *found = false;
  memset(s, 0, sizeof *s);
  char **ids = NULL;
  size_t n = 0;
  if (sp_snap_list(state_dir, uuid, &ids, &n, e) < 0)
    return -1;
  /* A snapshot whose metadata cannot be read is passed over: an older
   * good one serves better than none (`stillpoint state list` shows it). */
  for (size_t i = n; i-- > 0 && !*found;) {
    struct sp_err ignored = { 0 };
    if (sp_snap_read(state_dir, uuid, ids[i], SP_SNAP_META, s, &ignored) < 0)
      continue;
    if (need_tpm && !s->has_tpm)
      sp_snapshot_free(s);
    else
      *found = true;
  }
  sp_snap_ids_free(ids, n);
  return 0;
}

bool sp_snap_same_state(const struct sp_snapshot *a, const struct sp_snapshot *b)
{
  if (a->has_tpm != b->has_tpm || a->has_nvram != b->has_nvram)
    return false;
  if (a->has_tpm && strcmp(a->tpm.digest, b->tpm.digest) != 0)
    return false;
  return !a->has_nvram || strcmp(a->nvram.sha256, b->nvram.sha256) == 0;
}

static int by_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int sp_snap_stat_sig(const char *dir, char **sig, struct sp_err *e)
{
  *sig = NULL;
  _cleanup_closedir_ DIR *d = opendir(dir);
  if (!d)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", dir);
  _cleanup_(sp_strv_free) struct sp_strv lines = SP_STRV_INIT;
  size_t total = 1;
  struct dirent *de;
  while ((de = readdir(d))) {
    struct stat st;
    if (de->d_name[0] == '.' || strncmp(de->d_name, "TMP", 3) == 0 ||
        fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    sp_strv_push_take(&lines, sp_xasprintf("%s %lld %llu %lld.%09ld %lld.%09ld\n", de->d_name,
                                           (long long)st.st_size, (unsigned long long)st.st_ino,
                                           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                                           (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec));
    total += strlen(lines.v[lines.n - 1]);
  }
  if (lines.n)
    qsort(lines.v, lines.n, sizeof *lines.v, by_str);
  char *out = sp_xcalloc(1, total);
  for (size_t i = 0, off = 0; i < lines.n; i++) {
    size_t l = strlen(lines.v[i]);
    memcpy(out + off, lines.v[i], l);
    off += l;
  }
  *sig = out;
  return 0;
}

/* --- housekeeping --------------------------------------------------- */

static int remove_partials(const char *vdir, struct sp_err *e)
{
  _cleanup_closedir_ DIR *d = opendir(vdir);
  if (!d)
    return errno == ENOENT ? 0 : sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", vdir);
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    size_t l = strlen(de->d_name), sl = strlen(PARTIAL_SUFFIX);
    if (de->d_name[0] != '.' || l <= sl || strcmp(de->d_name + l - sl, PARTIAL_SUFFIX) != 0)
      continue;
    _cleanup_free_ char *p = sp_path_join(vdir, de->d_name);
    rc = sp_rm_rf(p, e);
  }
  return rc;
}

int sp_snap_prune(const char *state_dir, const char *uuid, long keep, int *removed,
                  struct sp_err *e)
{
  *removed = 0;
  _cleanup_free_ char *vdir = vm_dir(state_dir, uuid, e);
  char **ids = NULL;
  size_t n = 0;
  if (!vdir || remove_partials(vdir, e) < 0 || sp_snap_list(state_dir, uuid, &ids, &n, e) < 0)
    return -1;
  int rc = 0;
  long kept = 0;
  for (size_t i = n; i-- > 0 && rc == 0;) {
    _cleanup_free_ char *sdir = sp_path_join(vdir, ids[i]);
    _cleanup_free_ char *pin = sp_path_join(sdir, "PINNED");
    if (sp_exists(pin) || kept++ < keep)
      continue;
    rc = sp_rm_rf(sdir, e);
    *removed += rc == 0;
  }
  sp_snap_ids_free(ids, n);
  return rc;
}

/* Creates <vdir>/forgotten-<UTC time>[-N]; its name is not a snapshot id
 * and has no dot, so list, newest, read and prune all pass it over. */
static int make_forgotten(int vfd, const char *vdir, char **name, struct sp_err *e)
{
  time_t now = time(NULL);
  struct tm tm;
  char base[48];
  gmtime_r(&now, &tm);
  strftime(base, sizeof base, "forgotten-%Y%m%dT%H%M%SZ", &tm);
  for (int seq = 1; seq < 10000; seq++) {
    char cand[64];
    if (seq == 1)
      snprintf(cand, sizeof cand, "%s", base);
    else
      snprintf(cand, sizeof cand, "%s-%d", base, seq);
    if (mkdirat(vfd, cand, 0700) < 0) {
      if (errno == EEXIST)
        continue;
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot create %s/%s", vdir, cand);
    }
    /* mkdirat's mode went through umask: say it exactly. */
    if (fchmodat(vfd, cand, 0700, 0) < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot chmod %s/%s", vdir, cand);
    *name = sp_xstrdup(cand);
    return 0;
  }
  return sp_err_set(e, SP_EXIT_FAILED, "%s: no free name for %s", vdir, base);
}

int sp_snap_forget(const char *state_dir, const char *uuid, char **moved_to, size_t *moved,
                   struct sp_err *e)
{
  *moved_to = NULL;
  *moved = 0;
  _cleanup_free_ char *vdir = vm_dir(state_dir, uuid, e);
  _cleanup_free_ char *name = NULL;
  char **ids = NULL;
  size_t n = 0;
  if (!vdir || sp_snap_list(state_dir, uuid, &ids, &n, e) < 0)
    return -1;
  if (!n)
    return 0;
  int rc = 0;
  _cleanup_close_ int vfd = open(vdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (vfd < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", vdir);
  if (rc == 0)
    rc = make_forgotten(vfd, vdir, &name, e);
  _cleanup_close_ int ffd = rc == 0 ? openat(vfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                             O_CLOEXEC) : -1;
  if (rc == 0 && ffd < 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s/%s", vdir, name);
  /* Newest first: if a rename fails half-way, what stays behind is the
   * oldest, and the error says so. */
  for (size_t i = n; rc == 0 && i-- > 0;) {
    if (renameat(vfd, ids[i], ffd, ids[i]) < 0)
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot move %s/%s into %s (%zu of %zu "
                      "snapshots moved)", vdir, ids[i], name, *moved, n);
    else
      ++*moved;
  }
  /* The move must outlive a crash, or the hook recovers the TPM after all. */
  if (ffd >= 0 && fsync(ffd) < 0 && rc == 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s/%s", vdir, name);
  if (vfd >= 0 && fsync(vfd) < 0 && rc == 0)
    rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", vdir);
  if (name)
    *moved_to = sp_path_join(vdir, name);
  sp_snap_ids_free(ids, n);
  return rc;
}

int sp_snap_pin(const char *state_dir, const char *uuid, const char *id, const char *reason,
                struct sp_err *e)
{
  _cleanup_free_ char *sdir = snap_path(state_dir, uuid, id, NULL, e);
  if (!sdir)
    return -1;
  _cleanup_close_ int fd = open(sdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", sdir);
  _cleanup_free_ char *text = sp_xasprintf("%s\n", reason);
  if (sp_write_file_at(fd, "PINNED", text, strlen(text), 0600, e) < 0)
    return -1;
  if (fsync(fd) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot fsync %s", sdir);
  return 0;
}

int sp_snap_lock(const char *state_dir, const char *uuid, bool create, int *fd,
                 struct sp_err *e)
{
  *fd = -1;
  _cleanup_free_ char *vdir = vm_dir(state_dir, uuid, e);
  if (!vdir)
    return -1;
  if (!create && !sp_is_dir(vdir))
    return 0;
  if (create && snap_dir_prepare(vdir, e) < 0)
    return -1;
  _cleanup_free_ char *lock = sp_path_join(vdir, ".lock");
  _cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", lock);
  while (flock(lfd, LOCK_EX) < 0)
    if (errno != EINTR)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot lock %s", lock);
  *fd = steal_fd(&lfd);
  return 0;
}
