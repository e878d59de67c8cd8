#include "remote_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static bool plain(const char *s, size_t n)
{
  /* Host and user names end up in ssh's argv: nothing an option parser or
   * a shell could take for something else. */
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!(c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']' ||
          (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
      return false;
  }
  return n > 0 && s[0] != '-';
}

int remote_target_parse(const char *uri, const char *ssh_key, struct remote_target *t,
                        struct sp_err *e)
{
  memset(t, 0, sizeof *t);
  const char *sep = uri ? strstr(uri, "://") : NULL;
  if (!sep)
    return 0;
  size_t sl = (size_t)(sep - uri);
  bool ssh = (sl > 4 && strncmp(sep - 4, "+ssh", 4) == 0) ||
             (sl > 7 && strncmp(sep - 7, "+libssh", 7) == 0);
  const char *auth = sep + 3, *end = auth + strcspn(auth, "/?");
  if (!ssh || end == auth)
    return 0;
  t->remote = true;
  const char *at = memchr(auth, '@', (size_t)(end - auth));
  const char *hp = at ? at + 1 : auth;
  if (at) {
    if ((size_t)(at - auth) >= sizeof t->user || !plain(auth, (size_t)(at - auth)))
      return sp_err_set(e, SP_EXIT_USAGE, "%s: not a user name I will pass to ssh", uri);
    memcpy(t->user, auth, (size_t)(at - auth));
  }
  const char *colon = NULL;
  for (const char *p = hp; p < end; p++)
    if (*p == ':' && (hp[0] != '[' || (p > hp && p[-1] == ']')))
      colon = p;
  const char *hend = colon ? colon : end;
  if ((size_t)(hend - hp) >= sizeof t->host || !plain(hp, (size_t)(hend - hp)))
    return sp_err_set(e, SP_EXIT_USAGE, "%s: not a host name I will pass to ssh", uri);
  memcpy(t->host, hp, (size_t)(hend - hp));
  if (colon) {
    char *pend;
    long port = strtol(colon + 1, &pend, 10);
    if (pend != end || port < 1 || port > 65535)
      return sp_err_set(e, SP_EXIT_USAGE, "%s: bad port", uri);
    t->port = (int)port;
  }
  const char *q = strstr(end, "keyfile=");
  if (q && (q[-1] == '?' || q[-1] == '&')) {
    size_t n = strcspn(q + 8, "&");
    snprintf(t->keyfile, sizeof t->keyfile, "%.*s", (int)n, q + 8);
  } else if (ssh_key && *ssh_key) {
    snprintf(t->keyfile, sizeof t->keyfile, "%s", ssh_key);
  }
  return 0;
}

char *remote_target_libvirt_uri(const char *uri, const struct remote_target *t)
{
  if (!t->remote || !t->keyfile[0] || strstr(uri, "keyfile="))
    return sp_xstrdup(uri);
  return sp_xasprintf("%s%skeyfile=%s", uri, strchr(uri, '?') ? "&" : "?", t->keyfile);
}
