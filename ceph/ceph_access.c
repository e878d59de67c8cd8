#include "ceph_access.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool host_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-';
}

/* HOST[:PORT], the whole of s..s+len. */
static int one_addr(const char *s, size_t len, struct sp_ceph_mon *m, struct sp_err *e)
{
  size_t h = 0;
  while (h < len && host_char(s[h]))
    h++;
  if (h == 0 || h > SP_CEPH_HOST_MAX || s[0] == '-' || s[0] == '.')
    return sp_err_set(e, SP_EXIT_USAGE, "mon_host: '%.*s' is not a host name or IPv4 address "
                      "(IPv6 is not supported here)", (int)len, s);
  memcpy(m->host, s, h);
  m->host[h] = '\0';
  m->port = 0;
  if (h == len)
    return 0;
  if (s[h] != ':' || h + 1 == len || len - h - 1 > 5)
    return sp_err_set(e, SP_EXIT_USAGE, "mon_host: '%.*s' is not HOST:PORT (IPv6 is not "
                      "supported here)", (int)len, s);
  unsigned port = 0;
  for (size_t i = h + 1; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return sp_err_set(e, SP_EXIT_USAGE, "mon_host: bad port in '%.*s'", (int)len, s);
    port = port * 10 + (unsigned)(s[i] - '0');
  }
  if (port == 0 || port > 65535)
    return sp_err_set(e, SP_EXIT_USAGE, "mon_host: bad port in '%.*s'", (int)len, s);
  m->port = port;
  return 0;
}

/* [v1:|v2:]HOST[:PORT]; *kind 2, 1 or 0 (no prefix). */
static int typed_addr(const char *s, size_t len, struct sp_ceph_mon *m, int *kind,
                      struct sp_err *e)
{
  *kind = 0;
  if (len > 3 && (!strncmp(s, "v1:", 3) || !strncmp(s, "v2:", 3))) {
    *kind = s[1] - '0';
    s += 3;
    len -= 3;
  }
  return one_addr(s, len, m, e);
}

/* [A,B,...]: its v2 address, else its v1 (or untyped) one. */
static int addr_vector(const char *s, size_t len, struct sp_ceph_mon *m, struct sp_err *e)
{
  bool have = false;
  int best = -1;
  size_t i = 0;
  while (i <= len) {
    size_t j = i;
    while (j < len && s[j] != ',')
      j++;
    struct sp_ceph_mon a;
    int kind;
    if (typed_addr(s + i, j - i, &a, &kind, e) < 0)
      return -1;
    int rank = kind == 2 ? 2 : 1;
    if (rank > best) {
      *m = a;
      best = rank;
    }
    have = true;
    i = j + 1;
  }
  return have ? 0 : sp_err_set(e, SP_EXIT_USAGE, "mon_host: an empty address vector");
}

static bool sep(char c)
{
  return c == ',' || c == ';' || c == ' ' || c == '\t';
}

int sp_ceph_mon_host_parse(const char *value, struct sp_ceph_mon *out, size_t max, size_t *n,
                           struct sp_err *e)
{
  *n = 0;
  size_t len = strlen(value);
  if (len > 4096)
    return sp_err_set(e, SP_EXIT_USAGE, "mon_host is longer than 4096 characters");
  size_t i = 0;
  while (i < len) {
    if (sep(value[i])) {
      i++;
      continue;
    }
    if (*n == max)
      return sp_err_set(e, SP_EXIT_USAGE, "mon_host names more than %zu monitors", max);
    int rc;
    if (value[i] == '[') {
      const char *end = memchr(value + i, ']', len - i);
      if (!end || end == value + i + 1)
        return sp_err_set(e, SP_EXIT_USAGE, "mon_host: an address vector without its ']'");
      rc = addr_vector(value + i + 1, (size_t)(end - value - i - 1), &out[*n], e);
      i = (size_t)(end - value) + 1;
      if (i < len && !sep(value[i]))
        return sp_err_set(e, SP_EXIT_USAGE, "mon_host: text right after ']'");
    } else {
      size_t j = i;
      while (j < len && !sep(value[j]))
        j++;
      int kind;
      rc = typed_addr(value + i, j - i, &out[*n], &kind, e);
      i = j;
    }
    if (rc < 0)
      return -1;
    (*n)++;
  }
  return *n ? 0 : sp_err_set(e, SP_EXIT_USAGE, "mon_host names no monitor: set it in the Ceph "
                             "configuration (ceph_conf)");
}

/* ---- keyrings -------------------------------------------------------- */

static int b64_value(char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with its padding, nothing else. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t *olen)
{
  if (len == 0 || len % 4 || len / 4 * 3 > SP_CEPH_KEY_MAX)
    return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i + k];
      if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || s[i + 3] == '=')) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad || (v[k] = b64_value(c)) < 0)
        return -1;
    }
    unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                 (unsigned)v[3];
    out[o++] = (unsigned char)(w >> 16);
    if (pad < 2)
      out[o++] = (unsigned char)(w >> 8);
    if (pad < 1)
      out[o++] = (unsigned char)w;
  }
  *olen = o;
  return 0;
}

static void trim(const char **s, size_t *len)
{
  while (*len && (**s == ' ' || **s == '\t'))
    (*s)++, (*len)--;
  while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r'))
    (*len)--;
}

static int keyring_key(const char *text, size_t len, const char *entity, unsigned char *key,
                       size_t *klen, struct sp_err *e)
{
  if (len > SP_CEPH_KEYRING_MAX)
    return sp_err_set(e, SP_EXIT_USAGE, "the keyring is larger than %u bytes",
                      SP_CEPH_KEYRING_MAX);
  if (memchr(text, '\0', len))
    return sp_err_set(e, SP_EXIT_USAGE, "the keyring is not a text file");
  size_t elen = strlen(entity);
  int sections = 0, keys = 0;
  bool in = false;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - text) : len;
    const char *l = text + i;
    size_t ll = end - i;
    i = end + 1;
    trim(&l, &ll);
    if (ll == 0 || l[0] == '#' || l[0] == ';')
      continue;
    if (l[0] == '[') {
      if (l[ll - 1] != ']')
        return sp_err_set(e, SP_EXIT_USAGE, "the keyring has a section line without ']'");
      in = ll - 2 == elen && !memcmp(l + 1, entity, elen);
      sections += in;
      continue;
    }
    if (!in)
      continue;
    const char *eq = memchr(l, '=', ll);
    if (!eq)
      return sp_err_set(e, SP_EXIT_USAGE, "the keyring's [%s] has a line without '='", entity);
    const char *name = l, *val = eq + 1;
    size_t nl_ = (size_t)(eq - l), vl = ll - nl_ - 1;
    trim(&name, &nl_);
    trim(&val, &vl);
    if (nl_ != 3 || memcmp(name, "key", 3))
      continue;
    if (++keys > 1)
      break;
    if (b64_decode(val, vl, key, klen) < 0)
      return sp_err_set(e, SP_EXIT_USAGE, "the key of [%s] in the keyring is not "
                                   "base64 of at most %d bytes", entity, SP_CEPH_KEY_MAX);
  }
  if (sections != 1 || keys != 1)
    return sp_err_set(e, SP_EXIT_USAGE, "the keyring has %s [%s] section%s with a key: "
                      "give the keyring of that client (ceph_keyring)",
                      sections > 1 || keys > 1 ? "more than one" : "no", entity,
                      sections > 1 ? "s" : "");
  return 0;
}

int sp_ceph_keyring_key(const char *text, size_t len, const char *entity, unsigned char *key,
                        size_t *klen, struct sp_err *e)
{
  *klen = 0;
  if (keyring_key(text, len, entity, key, klen, e) == 0)
    return 0;
  /* Nothing of a refused keyring is left behind. */
  explicit_bzero(key, SP_CEPH_KEY_MAX);
  *klen = 0;
  return -1;
}
