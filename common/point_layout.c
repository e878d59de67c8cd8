#include "point_layout.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cleanup.h"
#include "fsutil.h"
#include "xalloc.h"

int sp_point_id_make(time_t t, enum sp_level level, char id[SP_POINT_ID_MAX])
{
  struct tm tm;
  if (!gmtime_r(&t, &tm))
    return -1;
  char stamp[20];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  const char *name = sp_level_name(level);
  return name && snprintf(id, SP_POINT_ID_MAX, "%s-%s", stamp, name) < SP_POINT_ID_MAX ? 0 : -1;
}

bool sp_point_id_valid(const char *id)
{
  /* YYYYMMDDTHHMMSSZ-level */
  if (!id || strlen(id) < 18 || strlen(id) >= SP_POINT_ID_MAX)
    return false;
  for (int i = 0; i < 16; i++) {
    char c = id[i];
    bool ok = i == 8 ? c == 'T' : i == 15 ? c == 'Z' : isdigit((unsigned char)c);
    if (!ok)
      return false;
  }
  enum sp_level level;
  return id[16] == '-' && sp_level_parse(id + 17, &level) == 0;
}

static int by_id(const void *a, const void *b)
{
  const struct sp_point_ref *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (int)x->partial - (int)y->partial;
}

static int list_dir(DIR *d, const char *domain_dir, struct sp_point_ref **out, size_t *n,
                    struct sp_err *e);

int sp_points_list(const char *domain_dir, struct sp_point_ref **out, size_t *n,
                   struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  _cleanup_closedir_ DIR *d = opendir(domain_dir);
  if (!d) {
    if (errno == ENOENT)
      return 0;
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", domain_dir);
  }
  return list_dir(d, domain_dir, out, n, e);
}

int sp_points_list_at(int domain_fd, const char *domain_dir, struct sp_point_ref **out,
                      size_t *n, struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  int fd = openat(domain_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  _cleanup_closedir_ DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0)
      close(fd);
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot list %s", domain_dir);
  }
  return list_dir(d, domain_dir, out, n, e);
}

static int list_dir(DIR *d, const char *domain_dir, struct sp_point_ref **out, size_t *n,
                    struct sp_err *e)
{
  struct dirent *de;
  _cleanup_free_ struct sp_point_ref *v = NULL;
  size_t count = 0;
  while ((de = readdir(d))) {
    char name[SP_POINT_ID_MAX + sizeof SP_PARTIAL_SUFFIX];
    if (snprintf(name, sizeof name, "%s", de->d_name) >= (int)sizeof name)
      continue;
    size_t len = strlen(name), sl = strlen(SP_PARTIAL_SUFFIX);
    bool partial = len > sl && strcmp(name + len - sl, SP_PARTIAL_SUFFIX) == 0;
    if (partial)
      name[len - sl] = '\0';
    if (!sp_point_id_valid(name))
      continue;
    v = sp_xreallocarray(v, count + 1, sizeof *v);
    /* A valid id is shorter than SP_POINT_ID_MAX (sp_point_id_valid). */
    memcpy(v[count].id, name, strlen(name) + 1);
    v[count].partial = partial;
    count++;
  }
  if (count)
    qsort(v, count, sizeof *v, by_id);
  *out = steal_pointer(&v);
  *n = count;
  return 0;
}

void sp_sums_add(struct sp_sums *s, const char *path, const char *sha256)
{
  s->v = sp_xreallocarray(s->v, s->n + 1, sizeof *s->v);
  s->v[s->n].path = sp_xstrdup(path);
  snprintf(s->v[s->n].sha256, sizeof s->v[s->n].sha256, "%s", sha256);
  s->n++;
}

int sp_sums_write(int point_dirfd, const struct sp_sums *s, struct sp_err *e)
{
  size_t cap = 1;
  for (size_t i = 0; i < s->n; i++)
    cap += strlen(s->v[i].path) + SP_SHA256_HEX_LEN + 3;
  _cleanup_free_ char *text = sp_xmalloc(cap);
  size_t off = 0;
  for (size_t i = 0; i < s->n; i++)
    off += (size_t)snprintf(text + off, cap - off, "%s  %s\n", s->v[i].sha256, s->v[i].path);
  return sp_write_file_at(point_dirfd, "SHA256SUMS", text, off, 0600, e);
}

int sp_sums_parse(const char *text, size_t len, struct sp_sums *s, struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  if (memchr(text, '\0', len))
    return sp_err_set(e, SP_EXIT_FAILED, "SHA256SUMS: binary data");
  const char *p = text, *end = text + len;
  int line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    line++;
    /* "<64 hex>  <path>" (sha256sum's text mode; '*' binary mode too) */
    if (n < 67 || (p[64] != ' ') || (p[65] != ' ' && p[65] != '*')) {
      sp_sums_free(s);
      return sp_err_set(e, SP_EXIT_FAILED, "SHA256SUMS:%d: not a sha256sum line", line);
    }
    char hex[65], path[4096];
    memcpy(hex, p, 64);
    hex[64] = '\0';
    size_t pl = n - 66;
    if (pl >= sizeof path) {
      sp_sums_free(s);
      return sp_err_set(e, SP_EXIT_FAILED, "SHA256SUMS:%d: path too long", line);
    }
    memcpy(path, p + 66, pl);
    path[pl] = '\0';
    bool hex_ok = true;
    for (int i = 0; i < 64; i++)
      hex_ok &= isxdigit((unsigned char)hex[i]) && !isupper((unsigned char)hex[i]);
    if (!hex_ok || !sp_relpath_ok(path)) {
      sp_sums_free(s);
      return sp_err_set(e, SP_EXIT_FAILED, "SHA256SUMS:%d: %s", line,
                        hex_ok ? "path leaves the point" : "bad hash");
    }
    sp_sums_add(s, path, hex);
    p += n + 1;
  }
  return 0;
}

int sp_sums_load_at(int point_fd, struct sp_sums *s, struct sp_err *e)
{
  memset(s, 0, sizeof *s);
  _cleanup_free_ char *text = NULL;
  size_t len;
  if (sp_read_file_at(point_fd, "SHA256SUMS", 1u << 20, &text, &len, e) < 0)
    return -1;
  return sp_sums_parse(text, len, s, e);
}

const char *sp_sums_find(const struct sp_sums *s, const char *path)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].path, path) == 0)
      return s->v[i].sha256;
  return NULL;
}

void sp_sums_free(struct sp_sums *s)
{
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].path);
  free(s->v);
  memset(s, 0, sizeof *s);
}

int sp_point_lock_at(int domain_fd, const char *id, bool create, int *fd, struct sp_err *e)
{
  char name[SP_POINT_ID_MAX + sizeof SP_LOCK_SUFFIX];
  snprintf(name, sizeof name, "%s%s", id, SP_LOCK_SUFFIX);
  *fd = openat(domain_fd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
  if (*fd < 0 && errno == ENOENT && !create)
    return 1;
  if (*fd < 0)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot open the point's lock file %s", name);
  if (flock(*fd, LOCK_EX | LOCK_NB) == 0) {
    if (create && fchmod(*fd, 0600) < 0) {
      int err = errno;
      close(*fd);
      *fd = -1;
      return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot set the mode of %s", name);
    }
    return 1;
  }
  int err = errno;
  close(*fd);
  *fd = -1;
  if (err == EWOULDBLOCK)
    return 0;
  return sp_err_sys(e, SP_EXIT_FAILED, err, "cannot lock %s", name);
}

void sp_point_unlock_at(int domain_fd, const char *id, int fd)
{
  if (fd < 0)
    return;
  char name[SP_POINT_ID_MAX + sizeof SP_LOCK_SUFFIX];
  snprintf(name, sizeof name, "%s%s", id, SP_LOCK_SUFFIX);
  (void)unlinkat(domain_fd, name, 0);
  close(fd);
}
