#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int vset(struct sp_err *e, int code, const char *fmt, va_list ap)
{
  e->code = code;
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  return -1;
}

int sp_err_set(struct sp_err *e, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vset(e, code, fmt, ap);
  va_end(ap);
  return -1;
}

int sp_err_sys(struct sp_err *e, int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vset(e, code, fmt, ap);
  va_end(ap);
  size_t n = strlen(e->msg);
  snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(errnum));
  return -1;
}

int sp_err_prefix(struct sp_err *e, const char *fmt, ...)
{
  char head[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(head, sizeof head - 2, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n > sizeof head - 3)
    n = sizeof head - 3;
  memcpy(head + n, ": ", 3);
  size_t hl = (size_t)n + 2, ml = strnlen(e->msg, sizeof e->msg - 1);
  /* Keep the end of the old message inside the buffer: a long message
   * loses its tail, never the context in front. */
  if (hl + ml > sizeof e->msg - 1)
    ml = sizeof e->msg - 1 - hl;
  memmove(e->msg + hl, e->msg, ml);
  memcpy(e->msg, head, hl);
  e->msg[hl + ml] = '\0';
  if (e->code == SP_EXIT_OK)
    e->code = SP_EXIT_FAILED;
  return -1;
}

void sp_err_clear(struct sp_err *e)
{
  e->code = SP_EXIT_OK;
  e->msg[0] = '\0';
}
