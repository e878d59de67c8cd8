#include "state_capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "host.h"

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
  _cleanup_free_ unsigned char *buf = malloc(cap);
  if (!buf)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", what);
  size_t n = 0;
  for (;;) {
    if (n == cap) {
      if (cap >= 256u << 20)
        return sp_err_set(e, SP_EXIT_FAILED, "%s is larger than 256 MiB", what);
      unsigned char *nb = realloc(buf, cap * 2);
      if (!nb)
        return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", what);
      buf = nb;
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
  if (!(b->name = strdup(name)))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "%s", name);
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
  b->name = strdup(slash ? slash + 1 : path);
  if (!b->name)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "%s", path);
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
  b->name = strdup(slash ? slash + 1 : path);
  if (!b->name) {
    sp_blob_free(b);
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "%s", path);
  }
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
    struct sp_blob *nf = realloc(t->files, (t->n + 1) * sizeof *nf);
    if (!nf) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", dir);
      break;
    }
    t->files = nf;
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
    if (!(b->name = strdup(name))) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "reading %s", dir);
      break;
    }
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

int sp_tree_capture(const char *dir, int max_reads, long budget_ms, struct sp_tree *t,
                    struct sp_capture_stats *st, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_tree_capture(&local, dir, max_reads, budget_ms, t, st, e);
}

int sp_blob_capture(const char *path, int max_reads, long budget_ms, struct sp_blob *b,
                    struct sp_capture_stats *st, struct sp_err *e)
{
  struct sp_host local;
  sp_host_local(&local);
  return sp_host_blob_capture(&local, path, max_reads, budget_ms, b, st, e);
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
