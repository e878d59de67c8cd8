#include "level.h"

#include <string.h>

static const char *const names[] = {
  [SP_LEVEL_FULL] = "full",
  [SP_LEVEL_INC] = "inc",
  [SP_LEVEL_DIFF] = "diff",
};
/* A level added to the enum without its name fails the build here. */
_Static_assert(sizeof names / sizeof names[0] == SP_LEVEL_COUNT,
               "every enum sp_level has its name in names[]");

const char *sp_level_name(enum sp_level level)
{
  return (unsigned)level < SP_LEVEL_COUNT ? names[level] : NULL;
}

int sp_level_parse(const char *name, enum sp_level *out)
{
  for (unsigned i = 0; name && i < SP_LEVEL_COUNT; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (enum sp_level)i;
      return 0;
    }
  return -1;
}

int sp_level_req_parse(const char *name, struct sp_level_req *out)
{
  if (name && strcmp(name, "auto") == 0) {
    *out = (struct sp_level_req){ .is_auto = true };
    return 0;
  }
  enum sp_level l;
  if (sp_level_parse(name, &l) < 0)
    return -1;
  *out = (struct sp_level_req){ .level = l };
  return 0;
}

const char *sp_level_req_name(struct sp_level_req req)
{
  return req.is_auto ? "auto" : sp_level_name(req.level);
}
