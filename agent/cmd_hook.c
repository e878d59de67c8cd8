/* stillpoint hook: see stillpoint-hook(8). Built with the hook issue. */
#include <stdio.h>

#include "commands.h"
#include "err.h"

int cmd_hook(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  fprintf(stderr, "stillpoint: hook: not implemented yet\n");
  return SP_EXIT_USAGE;
}
