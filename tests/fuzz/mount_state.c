/* libFuzzer harness: the mount state file that umount acts on
 * (mount_state.c), and its round trip: what parses serializes to text that
 * parses again to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mount_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct mount_state s, t;
  struct sp_err e = { 0 };
  if (mount_state_parse((const char *)data, size, &s, &e) < 0)
    return 0;
  char *text = NULL;
  if (mount_state_to_json(&s, &text, &e) == 0) {
    if (mount_state_parse(text, strlen(text), &t, &e) < 0 || t.nmounts != s.nmounts ||
        t.nloops != s.nloops || strcmp(t.dir, s.dir) != 0)
      abort();
    mount_state_free(&t);
  }
  free(text);
  mount_state_free(&s);
  return 0;
}
