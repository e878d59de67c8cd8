/* stillpoint-copy: the default copier (issue: the copier).  Not built yet. */
#include <stdio.h>

#include "err.h"

int main(void)
{
  fprintf(stderr, "stillpoint-copy: not implemented yet\n");
  return SP_EXIT_USAGE;
}
