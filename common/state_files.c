#include "state_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

void sp_blob_free(struct sp_blob *b)
{
  free(b->name);
  if (b->mapped && b->data)
    munmap(b->data, b->len);
  else
    free(b->data);
  memset(b, 0, sizeof *b);
}

void sp_tree_free(struct sp_tree *t)
{
  for (size_t i = 0; i < t->n; i++)
    sp_blob_free(&t->files[i]);
  free(t->files);
  memset(t, 0, sizeof *t);
}

/* Reads an open file completely; st gives its size (0 for a block device,
 * which is then read to its end). */
static int read_fd(int fd, const char *what, struct sp_blob *b, struct sp_err *e)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot stat %s", what);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return sp_err_set(e, SP_EXIT_FAILED, "%s is not a regular file or block device", what);
  /* Refused before anything is allocated: a sparse 1 TiB file costs its
   * creator nothing. */
  if (S_ISREG(st.st_mode) && st.st_size > (off_t)(256u << 20))
    return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than 256 MiB: not a state file", what);
  size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 1 << 20;
  _cleanup_free_ unsigned char *buf = sp_xmalloc(cap);
  size_t n = 0;
  for (;;) {
    if (n == cap) {
      if (cap >= 256u << 20)
        return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than 256 MiB", what);
      buf = sp_xrealloc(buf, cap * 2);
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read %s", what);
    if (r == 0)
      break;
    n += (size_t)r;
  }
  b->data = steal_pointer(&buf);
  b->len = n;
  b->mode = st.st_mode & 07777;
  b->uid = st.st_uid;
  b->gid = st.st_gid;
  sp_sha256_hex(b->data, n, b->sha256);
  return 0;
}

int sp_blob_read_fd(int fd, const char *name, struct sp_blob *b, struct sp_err *e)
{
  memset(b, 0, sizeof *b);
  b->name = sp_xstrdup(name);
  if (read_fd(fd, name, b, e) < 0) {
    sp_blob_free(b);
    return -1;
  }
  return 0;
}

int sp_blob_read(const char *path, struct sp_blob *b, struct sp_err *e)
{
  memset(b, 0, sizeof *b);
  /* O_NONBLOCK: a FIFO in the place of the file is refused by read_fd,
   * not waited on; reads of files and block devices ignore the flag. */
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", path);
  const char *slash = strrchr(path, '/');
  b->name = sp_xstrdup(slash ? slash + 1 : path);
  if (read_fd(fd, path, b, e) < 0) {
    sp_blob_free(b);
    return -1;
  }
  return 0;
}

int sp_blob_map(const char *path, struct sp_blob *b, struct sp_err *e)
{
  memset(b, 0, sizeof *b);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s", path);
  if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > (off_t)(256u << 20))
    return sp_blob_read(path, b, e); /* block devices, empty and huge files */
  const char *slash = strrchr(path, '/');
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (m == MAP_FAILED)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot map %s", path);
  b->data = m;
  b->len = (size_t)st.st_size;
  b->mapped = true;
  b->mode = st.st_mode & 07777;
  b->uid = st.st_uid;
  b->gid = st.st_gid;
  b->name = sp_xstrdup(slash ? slash + 1 : path);
  sp_sha256_hex(b->data, b->len, b->sha256);
  return 0;
}

static int by_name(const void *a, const void *b)
{
  return strcmp(((const struct sp_blob *)a)->name, ((const struct sp_blob *)b)->name);
}

static void tree_digest(struct sp_tree *t)
{
  /* sha256sum-style lines of every file, hashed: equal trees, equal digest. */
  size_t cap = 1, off = 0;
  for (size_t i = 0; i < t->n; i++)
    cap += strlen(t->files[i].name) + SP_SHA256_HEX_LEN + 4;
  _cleanup_free_ char *s = malloc(cap);
  if (!s) {
    t->digest[0] = '\0';
    return;
  }
  for (size_t i = 0; i < t->n; i++)
    off += (size_t)snprintf(s + off, cap - off, "%s  %s\n", t->files[i].sha256,
                            t->files[i].name);
  sp_sha256_hex(s, off, t->digest);
}

static int tree_read_fd(int dfd, const char *dir, struct sp_tree *t, bool *temp_present,
                        struct sp_err *e);

int sp_tree_read(const char *dir, struct sp_tree *t, bool *temp_present, struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  *temp_present = false;
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open directory %s", dir);
  return tree_read_fd(dfd, dir, t, temp_present, e);
}

int sp_tree_read_at(int dirfd, const char *rel, struct sp_tree *t, struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  _cleanup_close_ int dfd = sp_open_beneath(dirfd, rel, O_RDONLY | O_DIRECTORY, 0, e);
  bool temp;
  if (dfd < 0 || tree_read_fd(dfd, rel, t, &temp, e) < 0)
    return -1;
  /* A point holds no swtpm temporary: one there was not written by us. */
  if (temp) {
    sp_tree_free(t);
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "%s holds a swtpm temporary file (TMP*): not a "
                      "state stillpoint wrote", rel);
  }
  return 0;
}

enum sp_tree_entry sp_tree_entry_kind(const char *name)
{
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, ".lock") == 0)
    return SP_TREE_SKIP;
  if (strncmp(name, "TMP", 3) == 0)
    return SP_TREE_TEMP;
  return SP_TREE_FILE;
}

static int tree_read_fd(int dfd, const char *dir, struct sp_tree *t, bool *temp_present,
                        struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  *temp_present = false;
  int dup_fd = dup(dfd);
  _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (!d) {
    if (dup_fd >= 0)
      close(dup_fd);
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", dir);
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    const char *name = de->d_name;
    enum sp_tree_entry kind = sp_tree_entry_kind(name);
    if (kind == SP_TREE_TEMP)
      *temp_present = true;
    if (kind != SP_TREE_FILE)
      continue;
    t->files = sp_xreallocarray(t->files, t->n + 1, sizeof *t->files);
    struct sp_blob *b = &t->files[t->n];
    memset(b, 0, sizeof *b);
    _cleanup_close_ int fd =
      openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
      continue; /* renamed away under us: the next read sees the new one */
    if (fd < 0) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open %s/%s", dir, name);
      break;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
      rc = sp_err_set(e, SP_EXIT_FAILED, "%s/%s is not a regular file", dir, name);
      break;
    }
    b->name = sp_xstrdup(name);
    t->n++;
    rc = read_fd(fd, name, b, e);
  }
  if (rc < 0) {
    sp_tree_free(t);
    return -1;
  }
  sp_tree_finish(t);
  return 0;
}

void sp_tree_finish(struct sp_tree *t)
{
  if (t->n)
    qsort(t->files, t->n, sizeof *t->files, by_name);
  tree_digest(t);
}

int sp_blob_write_at(int dirfd, const char *name, const struct sp_blob *b, bool chown_file,
                     struct sp_err *e)
{
  mode_t mode = b->mode & 0777 ? b->mode & 0777 : 0600;
  if (sp_write_file_at(dirfd, name, b->data, b->len, mode, e) < 0)
    return -1;
  if (chown_file && geteuid() == 0 &&
      fchownat(dirfd, name, b->uid, b->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot set the owner of %s", name);
  return 0;
}

int sp_tree_write_at(int dirfd, const struct sp_tree *t, bool chown_files, struct sp_err *e)
{
  for (size_t i = 0; i < t->n; i++)
    if (sp_blob_write_at(dirfd, t->files[i].name, &t->files[i], chown_files, e) < 0)
      return -1;
  return 0;
}

/* ---- what a file is, and who may read it -------------------------------- */

const char *sp_user_name(uid_t uid, char *buf, size_t len)
{
  char tmp[4096];
  struct passwd pw, *r = NULL;
  if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &r) == 0 && r)
    snprintf(buf, len, "%s", r->pw_name);
  else
    snprintf(buf, len, "%u", (unsigned)uid);
  return buf;
}

const char *sp_group_name(gid_t gid, char *buf, size_t len)
{
  char tmp[4096];
  struct group gr, *r = NULL;
  if (getgrgid_r(gid, &gr, tmp, sizeof tmp, &r) == 0 && r)
    snprintf(buf, len, "%s", r->gr_name);
  else
    snprintf(buf, len, "%u", (unsigned)gid);
  return buf;
}

static void id_names(struct sp_file_info *fi)
{
  sp_user_name(fi->uid, fi->owner, sizeof fi->owner);
  sp_group_name(fi->gid, fi->group, sizeof fi->group);
}

int sp_file_info(const char *path, struct sp_file_info *fi, struct sp_err *e)
{
  memset(fi, 0, sizeof *fi);
  fi->path = sp_xstrdup(path);
  struct stat st;
  if (stat(path, &st) < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    /* EACCES on a parent: it exists as far as we can tell, unreadable. */
    fi->exists = true;
    return 0;
  }
  fi->exists = true;
  fi->uid = st.st_uid;
  fi->gid = st.st_gid;
  fi->mode = st.st_mode & 07777;
  fi->size = (long long)st.st_size;
  int want = S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK;
  fi->readable = faccessat(AT_FDCWD, path, want, AT_EACCESS) == 0;
  id_names(fi);
  return 0;
}

void sp_file_info_free(struct sp_file_info *fi)
{
  free(fi->path);
  fi->path = NULL;
}

/* The first ancestor of path that this process cannot search, with its
 * owner: that is what the user has to change. */
static bool blocking_ancestor(const char *path, struct sp_file_info *out)
{
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    bool blocked = faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) != 0;
    struct sp_err ignored = { 0 };
    if (blocked && sp_file_info(buf, out, &ignored) == 0 && out->owner[0])
      return true;
    if (blocked)
      sp_file_info_free(out);
    *p = '/';
  }
  return false;
}

void sp_access_hint(const struct sp_file_info *fi, const char *what, char *buf, size_t size)
{
  struct sp_file_info anc = { 0 };
  if (!fi->owner[0] && blocking_ancestor(fi->path, &anc)) {
    snprintf(buf, size, "%s %s cannot be reached: its directory %s is owned by %s:%s mode "
             "%04o: run as root or add this user to group %s", what, fi->path, anc.path,
             anc.owner, anc.group, (unsigned)anc.mode, anc.group);
    sp_file_info_free(&anc);
    return;
  }
  if (!fi->owner[0]) {
    snprintf(buf, size, "%s %s cannot be examined: run as root", what, fi->path);
    return;
  }
  snprintf(buf, size, "%s %s is owned by %s:%s mode %04o: run as root or add this user to "
           "group %s", what, fi->path, fi->owner, fi->group, (unsigned)fi->mode, fi->group);
}
