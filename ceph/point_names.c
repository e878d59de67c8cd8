#include "point_names.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "point_layout.h"
#include "rbd_spec.h"
#include "uuid.h"

#define RECORD_PREFIX "stillpoint-point 1 sha256 "

static char *join(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *join(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int rc = vasprintf(&s, fmt, ap);
  va_end(ap);
  return rc < 0 ? NULL : s;
}

char *sp_rados_vm_object(const char *uuid)
{
  if (!sp_uuid_ok(uuid))
    return NULL;
  return join("stillpoint.vm.%s", uuid);
}

char *sp_rados_point_object(const char *uuid, const char *id, const char *path)
{
  if (!sp_uuid_ok(uuid) || !sp_point_id_valid(id) || !path || path[0] == '@' ||
      !sp_relpath_ok(path))
    return NULL;
  return join("stillpoint.point.%s.%s/%s", uuid, id, path);
}

char *sp_rados_image_name(const char *uuid, const char *target, const char *chain_id)
{
  if (!sp_uuid_ok(uuid) || !target || !sp_rbd_name_ok(target, strlen(target)) ||
      strchr(target, '.') || !sp_point_id_valid(chain_id))
    return NULL;
  char *name = join("stillpoint.%s.%s.%s", uuid, target, chain_id);
  if (name && !sp_rbd_name_ok(name, strlen(name))) {
    free(name);
    return NULL;
  }
  return name;
}

char *sp_rados_point_key(const char *id)
{
  return sp_point_id_valid(id) ? join(SP_RADOS_KEY_POINT "%s", id) : NULL;
}

bool sp_rados_item_ok(const char *item)
{
  if (!item || !*item)
    return false;
  if (item[0] != '@')
    return sp_relpath_ok(item);
  const char *image = item + 1;
  const char *at = strchr(image, '@');
  size_t ilen = at ? (size_t)(at - image) : strlen(image);
  if (!sp_rbd_name_ok(image, ilen))
    return false;
  return !at || sp_point_id_valid(at + 1);
}

char *sp_rados_pending_key(const char *id, const char *item)
{
  if (!sp_point_id_valid(id) || !sp_rados_item_ok(item))
    return NULL;
  return join(SP_RADOS_KEY_PENDING "%s.%s", id, item);
}

bool sp_rados_key_parse(const char *key, struct sp_rados_key *out)
{
  *out = (struct sp_rados_key){ 0 };
  const char *rest;
  if (!strncmp(key, SP_RADOS_KEY_POINT, strlen(SP_RADOS_KEY_POINT))) {
    rest = key + strlen(SP_RADOS_KEY_POINT);
    if (strlen(rest) >= sizeof out->id || !sp_point_id_valid(rest))
      return false;
    out->kind = 'p';
    strcpy(out->id, rest);
    return true;
  }
  if (strncmp(key, SP_RADOS_KEY_PENDING, strlen(SP_RADOS_KEY_PENDING)))
    return false;
  rest = key + strlen(SP_RADOS_KEY_PENDING);
  /* A point id has no '.', so the first one ends it. */
  const char *dot = strchr(rest, '.');
  if (!dot || (size_t)(dot - rest) >= sizeof out->id)
    return false;
  memcpy(out->id, rest, (size_t)(dot - rest));
  out->id[dot - rest] = '\0';
  if (!sp_point_id_valid(out->id) || !sp_rados_item_ok(dot + 1))
    return false;
  out->kind = 'i';
  out->item = dot + 1;
  return true;
}

int sp_commit_record_format(const struct sp_commit_record *r, char *buf, size_t n)
{
  int len = snprintf(buf, n, RECORD_PREFIX "%s size %" PRIu64, r->sha256, r->size);
  return len < 0 || (size_t)len >= n ? -1 : len;
}

static bool lower_hex(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

int sp_commit_record_parse(const char *buf, size_t len, struct sp_commit_record *out,
                           struct sp_err *e)
{
  *out = (struct sp_commit_record){ 0 };
  const size_t plen = strlen(RECORD_PREFIX);
  char tmp[SP_RADOS_RECORD_MAX + 1];
  if (len > SP_RADOS_RECORD_MAX || memchr(buf, '\0', len))
    return sp_err_set(e, SP_EXIT_FAILED, "commit record: not a record");
  memcpy(tmp, buf, len);
  tmp[len] = '\0';
  const char *p = tmp + plen;
  if (len < plen + SP_SHA256_HEX_LEN || strncmp(tmp, RECORD_PREFIX, plen) ||
      !lower_hex(p, SP_SHA256_HEX_LEN) || strncmp(p + SP_SHA256_HEX_LEN, " size ", 6))
    return sp_err_set(e, SP_EXIT_FAILED,
                      "commit record '%.60s': expected '" RECORD_PREFIX "HEX size N'", tmp);
  const char *num = p + SP_SHA256_HEX_LEN + 6;
  char *end;
  errno = 0;
  unsigned long long size = strtoull(num, &end, 10);
  /* Digits only, no sign, no leading zero, nothing after. */
  if (errno || *num < '0' || *num > '9' || (num[0] == '0' && num[1]) || *end)
    return sp_err_set(e, SP_EXIT_FAILED, "commit record: bad size '%.24s'", num);
  memcpy(out->sha256, p, SP_SHA256_HEX_LEN);
  out->sha256[SP_SHA256_HEX_LEN] = '\0';
  out->size = size;
  return 0;
}

enum sp_commit_outcome sp_commit_outcome(int rc)
{
  switch (rc) {
  case 0:
    return SP_COMMIT_LANDED;
  case -ECANCELED: /* cmpxattr: the holder is not us */
  case -ENODATA:   /* cmpxattr: no holder at all */
  case -EPERM:
  case -EACCES:
  case -EINVAL:
  case -ENOSPC:
  case -EDQUOT:
  case -EROFS:
  case -EOPNOTSUPP:
  case -ENOMEM:    /* never sent */
    return SP_COMMIT_NOT_LANDED;
  default:
    return SP_COMMIT_UNKNOWN;
  }
}

enum sp_commit_outcome sp_commit_readback(int rc, const char *val, size_t vlen,
                                          const struct sp_commit_record *ours)
{
  char want[SP_RADOS_RECORD_MAX];
  if (rc == -ENOENT)
    return SP_COMMIT_NOT_LANDED;
  if (rc < 0)
    return SP_COMMIT_UNKNOWN;
  int n = sp_commit_record_format(ours, want, sizeof want);
  return n >= 0 && val && (size_t)n == vlen && memcmp(val, want, vlen) == 0
           ? SP_COMMIT_LANDED
           : SP_COMMIT_NOT_LANDED;
}

/* A word of a cookie: printable, no space, not empty. */
static bool word_ok(const char *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
      return false;
  return true;
}

bool sp_rados_holder_format(char *buf, size_t n, const char *host, long pid, const char *what,
                            const char *since)
{
  if (!word_ok(host, strlen(host)) || !word_ok(what, strlen(what)) ||
      !word_ok(since, strlen(since)) || pid <= 0)
    return false;
  int w = snprintf(buf, n, "%s pid %ld %s since %s", host, pid, what, since);
  return w > 0 && (size_t)w < n;
}

bool sp_rados_holder_parse(const char *cookie, char *host, size_t hn, long *pid)
{
  const char *sp = strchr(cookie, ' ');
  if (!sp || !word_ok(cookie, (size_t)(sp - cookie)) || (size_t)(sp - cookie) >= hn ||
      strncmp(sp, " pid ", 5) != 0)
    return false;
  const char *d = sp + 5, *end = d;
  long v = 0;
  while (*end >= '0' && *end <= '9' && end - d < 10)
    v = v * 10 + (*end++ - '0');
  if (end == d || *d == '0' || *end != ' ' || v <= 0)
    return false;
  const char *what = end + 1, *wend = strchr(what, ' ');
  if (!wend || !word_ok(what, (size_t)(wend - what)) || strncmp(wend, " since ", 7) != 0 ||
      !word_ok(wend + 7, strlen(wend + 7)))
    return false;
  memcpy(host, cookie, (size_t)(sp - cookie));
  host[sp - cookie] = '\0';
  *pid = v;
  return true;
}
