/* Whether a buffer is all zero bytes, at memcmp speed: once the first
 * 16 bytes are known to be zero, the buffer is zero exactly when it
 * equals itself shifted by 16 bytes (the trick nbdkit's iszero.h uses). */
#ifndef SP_COPY_ISZERO_H
#define SP_COPY_ISZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool sp_is_zero(const char *buf, size_t len)
{
  const size_t lead = len < 16 ? len : 16;
  for (size_t i = 0; i < lead; i++)
    if (buf[i])
      return false;
  return len <= 16 || memcmp(buf, buf + 16, len - 16) == 0;
}

#endif
