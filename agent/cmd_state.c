/* stillpoint state: see stillpoint-hook(8). Built with the hook issue. */
#include <stdio.h>

#include "commands.h"
#include "err.h"

int cmd_state(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  fprintf(stderr, "stillpoint: state: not implemented yet\n");
  return SP_EXIT_USAGE;
}
