/* libFuzzer harness: stillpoint's INI policy files (common/config.c,
 * through inih) and --set assignments.  The file is a memfd, so nothing
 * touches the disk; every value accepted must read back as its key's type
 * allows. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int fd = -1;
  if (fd < 0 && (fd = memfd_create("stillpoint-fuzz.conf", 0)) < 0)
    abort();
  if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
    abort();
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  struct sp_config cfg;
  struct sp_err e = { 0 };
  struct sp_config_args a = { .confdir = "/nonexistent/stillpoint-fuzz" };
  if (sp_config_load(&cfg, &a, &e) < 0)
    abort();
  int rc = sp_config_apply_file(&cfg, path, false, &e);
  if (rc < 0 && !e.msg[0])
    abort();
  /* the same bytes as a --set */
  char *set = strndup((const char *)data, size);
  if (set) {
    sp_err_clear(&e);
    if (sp_config_apply_set(&cfg, set, &e) < 0 && !e.msg[0])
      abort();
    free(set);
  }
  for (int k = 0; k < SP_KEY__COUNT; k++) {
    const struct sp_key_def *d = sp_config_key_def((enum sp_key)k);
    const char *v = sp_config_str(&cfg, (enum sp_key)k);
    if (!v)
      abort();
    bool word = false; /* an int key's word (parallel = auto) reads 0 */
    for (const char *const *c = d->choices; d->type == SP_T_INT && c && *c; c++)
      word = word || strcmp(*c, v) == 0;
    if (d->type == SP_T_INT && !word && (sp_config_int(&cfg, (enum sp_key)k) < d->min ||
                                         sp_config_int(&cfg, (enum sp_key)k) > d->max))
      abort();
  }
  sp_config_free(&cfg);
  return 0;
}
