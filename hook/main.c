/* stillpoint-hook: the libvirt qemu hook (issue: the hook).  Not built yet. */
#include <stdio.h>

#include "err.h"

int main(void)
{
  fprintf(stderr, "stillpoint-hook: not implemented yet\n");
  return SP_EXIT_USAGE;
}
