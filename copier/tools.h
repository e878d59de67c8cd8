/* The qemu programs the copier drives, found in PATH before anything is
 * created: a missing qemu-utils is then one clear line, not a failed
 * child halfway through. */
#ifndef SP_COPY_TOOLS_H
#define SP_COPY_TOOLS_H

#include <stdbool.h>

#include "err.h"

struct tools {
  char *qemu_img; /* absolute paths */
  char *qemu_nbd; /* with env, only for a compressed image (NULL otherwise) */
  char *env;
};

int tools_find(struct tools *t, bool compress, struct sp_err *e);
void tools_free(struct tools *t);

#endif
