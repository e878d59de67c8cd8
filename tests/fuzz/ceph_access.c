/* libFuzzer harness: mon_host values and keyrings (ceph/ceph_access.c).
 * The first byte picks which; what parses must be what the XML and the
 * secret may carry: host names of safe characters, ports in range, a key
 * of at most SP_CEPH_KEY_MAX bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ceph_access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  char *text = malloc(size);
  if (!text)
    return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  struct sp_err e = { 0 };
  if (data[0] & 1) {
    struct sp_ceph_mon m[SP_CEPH_MONS_MAX];
    size_t n = 0;
    if (sp_ceph_mon_host_parse(text, m, SP_CEPH_MONS_MAX, &n, &e) == 0) {
      if (n == 0 || n > SP_CEPH_MONS_MAX)
        abort();
      for (size_t i = 0; i < n; i++)
        if (!m[i].host[0] || m[i].port > 65535 || strspn(m[i].host, "abcdefghijklmnopqrstuvwxyz"
              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(m[i].host))
          abort();
    } else if (!e.msg[0]) {
      abort();
    }
  } else {
    unsigned char k[SP_CEPH_KEY_MAX];
    size_t n = 99;
    int rc = sp_ceph_keyring_key(text, size - 1, "client.x", k, &n, &e);
    if ((rc == 0 && (n == 0 || n > SP_CEPH_KEY_MAX)) || (rc < 0 && (n != 0 || !e.msg[0])))
      abort();
  }
  free(text);
  return 0;
}
