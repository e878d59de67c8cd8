#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Said with write(2), which allocates nothing, then abort(): a core for
 * whoever looks, exit 134 for the caller. */
static void __attribute__((noreturn)) oom(void)
{
  static const char msg[] = "stillpoint: out of memory\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  abort();
}

void *sp_xmalloc(size_t size)
{
  void *p = malloc(size ? size : 1);
  if (!p)
    oom();
  return p;
}

void *sp_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    oom();
  return p;
}

void *sp_xrealloc(void *p, size_t size)
{
  void *q = realloc(p, size ? size : 1);
  if (!q)
    oom();
  return q;
}

void *sp_xreallocarray(void *p, size_t n, size_t size)
{
  void *q = reallocarray(p, n ? n : 1, size ? size : 1);
  if (!q)
    oom();
  return q;
}

char *sp_xstrdup(const char *s)
{
  char *d = strdup(s);
  if (!d)
    oom();
  return d;
}

void *sp_xaligned_alloc(size_t align, size_t size)
{
  void *p = aligned_alloc(align, size);
  if (!p)
    oom();
  return p;
}

char *sp_xstrndup(const char *s, size_t n)
{
  char *d = strndup(s, n);
  if (!d)
    oom();
  return d;
}

char *sp_xvasprintf(const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    oom();
  return s;
}

char *sp_xasprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = sp_xvasprintf(fmt, ap);
  va_end(ap);
  return s;
}
