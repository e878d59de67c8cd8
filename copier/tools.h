/* The qemu programs the copier drives, found in PATH before anything is
 * created: a missing qemu-utils is then one clear line, not a failed
 * child halfway through. */
#ifndef SP_COPY_TOOLS_H
#define SP_COPY_TOOLS_H

#include "err.h"

struct tools {
  char *qemu_img; /* absolute paths */
  char *qemu_nbd;
  char *env;
};

int tools_find(struct tools *t, struct sp_err *e);
void tools_free(struct tools *t);

#endif
