#include "rbd_spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

bool sp_rbd_spec_is(const char *s)
{
  return s && !strncmp(s, SP_RBD_PREFIX, strlen(SP_RBD_PREFIX));
}

bool sp_rbd_name_ok(const char *name, size_t len)
{
  if (len == 0 || len > SP_RBD_NAME_MAX || name[0] == '-')
    return false;
  if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

void sp_rbd_spec_free(struct sp_rbd_spec *s)
{
  free(s->pool);
  free(s->ns);
  free(s->image);
  free(s->snap);
  *s = (struct sp_rbd_spec){ 0 };
}

static int part(const char *what, const char *p, size_t n, char **out, const char *whole,
                struct sp_err *e)
{
  if (!sp_rbd_name_ok(p, n))
    return sp_err_set(e, SP_EXIT_USAGE,
                      "%s: bad %s '%.*s' (expected 1 to %d of A-Z a-z 0-9 . _ -, not starting "
                      "with -)",
                      whole, what, (int)(n > 64 ? 64 : n), p, SP_RBD_NAME_MAX);
  *out = sp_xstrndup(p, n);
  return 0;
}

int sp_rbd_spec_parse(const char *s, struct sp_rbd_spec *out, struct sp_err *e)
{
  *out = (struct sp_rbd_spec){ 0 };
  if (!sp_rbd_spec_is(s))
    return sp_err_set(e, SP_EXIT_USAGE, "%s: expected rbd:POOL[/NAMESPACE]/IMAGE@SNAPSHOT", s);
  const char *p = s + strlen(SP_RBD_PREFIX);
  const char *at = strchr(p, '@');
  const char *end = at ? at : p + strlen(p);
  /* POOL/IMAGE or POOL/NAMESPACE/IMAGE: one or two slashes before the @. */
  const char *s1 = memchr(p, '/', (size_t)(end - p));
  const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
  const char *s3 = s2 ? memchr(s2 + 1, '/', (size_t)(end - s2 - 1)) : NULL;
  int rc = 0;
  if (!s1 || s3)
    rc = sp_err_set(e, SP_EXIT_USAGE, "%s: expected rbd:POOL[/NAMESPACE]/IMAGE@SNAPSHOT", s);
  else if (part("pool", p, (size_t)(s1 - p), &out->pool, s, e) < 0 ||
           (s2 && part("namespace", s1 + 1, (size_t)(s2 - s1 - 1), &out->ns, s, e) < 0) ||
           part("image", (s2 ? s2 : s1) + 1, (size_t)(end - (s2 ? s2 : s1) - 1), &out->image, s,
                e) < 0 ||
           (at && part("snapshot", at + 1, strlen(at + 1), &out->snap, s, e) < 0))
    rc = -1;
  if (rc < 0)
    sp_rbd_spec_free(out);
  return rc;
}

char *sp_rbd_spec_format(const struct sp_rbd_spec *s, const char *snap)
{
  return sp_xasprintf(SP_RBD_PREFIX "%s%s%s/%s%s%s", s->pool, s->ns ? "/" : "",
                      s->ns ? s->ns : "", s->image, snap ? "@" : "", snap ? snap : "");
}

static bool same(const char *a, const char *b)
{
  return (!a && !b) || (a && b && !strcmp(a, b));
}

bool sp_rbd_spec_same_image(const struct sp_rbd_spec *a, const struct sp_rbd_spec *b)
{
  return same(a->pool, b->pool) && same(a->ns, b->ns) && same(a->image, b->image);
}
