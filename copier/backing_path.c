#include "backing_path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* Length of the next path component at *p, skipping slashes before it. */
static size_t next_component(const char **p)
{
  while (**p == '/')
    (*p)++;
  return strcspn(*p, "/");
}

char *sp_backing_relpath(const char *from_dir, const char *to)
{
  if (!from_dir || !to || from_dir[0] != '/' || to[0] != '/') {
    errno = EINVAL;
    return NULL;
  }
  /* Skip the components both paths share. */
  const char *a = from_dir, *b = to;
  for (;;) {
    const char *a2 = a, *b2 = b;
    size_t la = next_component(&a2), lb = next_component(&b2);
    if (la == 0 || la != lb || memcmp(a2, b2, la) != 0)
      break;
    a = a2 + la;
    b = b2 + lb;
  }
  /* One ".." for each component of from_dir left, then the rest of to. */
  size_t ups = 0;
  for (const char *p = a;;) {
    size_t l = next_component(&p);
    if (l == 0)
      break;
    ups++;
    p += l;
  }
  while (*b == '/')
    b++;
  if (*b == '\0') {
    errno = EINVAL; /* to is from_dir or one of its parents: not a file beside it */
    return NULL;
  }
  size_t tail = strlen(b);
  while (tail && b[tail - 1] == '/')
    tail--;
  char *out = sp_xmalloc(3 * ups + tail + 1);
  char *w = out;
  for (size_t i = 0; i < ups; i++, w += 3)
    memcpy(w, "../", 3);
  /* Copy the tail with repeated slashes squeezed. */
  for (size_t i = 0; i < tail; i++)
    if (b[i] != '/' || (i > 0 && b[i - 1] != '/'))
      *w++ = b[i];
  *w = '\0';
  return out;
}
