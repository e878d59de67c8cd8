/* Messages for the person running the tool.  The sink is described by a
 * struct passed along (no global logger): the hook logs to syslog and
 * stderr, the commands to stderr only. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>
#include <syslog.h>

struct sp_log {
  const char *prog;  /* prefix of every line, e.g. "stillpoint" */
  bool to_syslog;    /* also send to syslog (openlog done by the caller) */
  bool quiet;        /* drop LOG_INFO */
  bool debug;        /* keep LOG_DEBUG */
};

void sp_log_msg(const struct sp_log *log, int prio, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#define sp_error(log, ...) sp_log_msg((log), LOG_ERR, __VA_ARGS__)
#define sp_warn(log, ...) sp_log_msg((log), LOG_WARNING, __VA_ARGS__)
#define sp_info(log, ...) sp_log_msg((log), LOG_INFO, __VA_ARGS__)
#define sp_debug(log, ...) sp_log_msg((log), LOG_DEBUG, __VA_ARGS__)

#endif
