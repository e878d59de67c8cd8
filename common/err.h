/* Errors that travel up to main(): a message a user can act on, and the
 * exit code class it belongs to (docs/design.md, "Exit codes and output"). */
#ifndef SP_ERR_H
#define SP_ERR_H

enum sp_exit {
  SP_EXIT_OK = 0,
  SP_EXIT_FAILED = 1,    /* the job failed; the VM is running, nothing looks complete */
  SP_EXIT_USAGE = 2,     /* bad command line or configuration */
  SP_EXIT_PREFLIGHT = 3, /* refused before anything was touched */
};

struct sp_err {
  int code;       /* an enum sp_exit, SP_EXIT_OK while no error is set */
  char msg[2048];
};

/* Each returns -1 so a failing function can "return sp_err_set(...)". */
int sp_err_set(struct sp_err *e, int code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* Appends ": strerror(errnum)". */
int sp_err_sys(struct sp_err *e, int code, int errnum, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
/* Puts context in front of an error already set: "what: <old message>". */
int sp_err_prefix(struct sp_err *e, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
void sp_err_clear(struct sp_err *e);

#endif
