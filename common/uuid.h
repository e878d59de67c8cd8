/* Whether a string is a UUID as libvirt prints it (8-4-4-4-12 lowercase
 * hex).  A UUID read from domain XML or typed by a user becomes a path
 * component (/var/lib/stillpoint/state/<uuid>): nothing else may. */
#ifndef SP_UUID_H
#define SP_UUID_H

#include <stdbool.h>
#include <string.h>

#define SP_UUID_LEN 36

static inline bool sp_uuid_ok(const char *s)
{
  if (!s || strlen(s) != SP_UUID_LEN)
    return false;
  for (int i = 0; i < SP_UUID_LEN; i++) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

#endif
