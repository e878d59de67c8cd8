#include "input.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "xalloc.h"

int hook_read_input(int fd, size_t max, long long deadline_ms, char **buf, size_t *len,
                    struct sp_err *e)
{
  *buf = NULL;
  *len = 0;
  size_t cap = 65536, n = 0;
  bool too_big = false;
  _cleanup_free_ char *b = sp_xmalloc(cap + 1);
  for (;;) {
    long long left = deadline_ms - sp_now_ms();
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = left > 0 ? poll(&p, 1, (int)left) : 0;
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return sp_err_set(e, SP_EXIT_FAILED, "stdin did not end within the time bound");
    if (r < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "waiting for stdin");
    if (n == cap && !too_big) {
      size_t ncap = cap * 2;
      if (ncap <= max) {
        b = sp_xrealloc(b, ncap + 1);
        cap = ncap;
      } else {
        too_big = true;
      }
    }
    /* Past max, keep reading into the last chunk only: drained, dropped. */
    char *dst = too_big ? b : b + n;
    size_t room = too_big ? cap : cap - n;
    ssize_t got = read(fd, dst, room);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (got < 0)
      return sp_err_sys(e, SP_EXIT_FAILED, errno, "reading stdin");
    if (got == 0)
      break;
    if (!too_big)
      n += (size_t)got;
  }
  if (too_big)
    return sp_err_set(e, SP_EXIT_FAILED, "stdin holds more than %zu bytes", max);
  b[n] = '\0';
  *len = n;
  *buf = steal_pointer(&b);
  return 0;
}
