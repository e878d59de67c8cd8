#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void sp_log_msg(const struct sp_log *log, int prio, const char *fmt, ...)
{
  static const struct sp_log fallback = { .prog = "stillpoint" };
  if (!log)
    log = &fallback;
  if ((prio == LOG_INFO && log->quiet) || (prio == LOG_DEBUG && !log->debug))
    return;

  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);

  const char *tag = prio <= LOG_ERR ? "error: " : prio == LOG_WARNING ? "warning: " : "";
  /* One fprintf per line so parallel writers (copiers, guardian) never
   * interleave inside a line. */
  fprintf(stderr, "%s: %s%s\n", log->prog, tag, line);
  if (log->to_syslog)
    syslog(prio, "%s%s", tag, line);
}
