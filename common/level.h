/* A point's level: full (every allocated cluster), inc (changed since the
 * previous point) or diff (changed since the chain's full).  One enum and
 * one string table for the copier, the manifest, the planner and the
 * policy; "auto" is a request (level = auto), never a point's level. */
#ifndef SP_LEVEL_H
#define SP_LEVEL_H

#include <stdbool.h>

enum sp_level { SP_LEVEL_FULL, SP_LEVEL_INC, SP_LEVEL_DIFF, SP_LEVEL_COUNT };

/* "full", "inc" or "diff"; NULL for anything out of range. */
const char *sp_level_name(enum sp_level level);
/* The name back to the enum; -1 for anything else (including "auto"). */
int sp_level_parse(const char *name, enum sp_level *out);

/* What --level or the policy's level asks for: auto (the policy's rhythm
 * decides) or one level.  A request, so a type of its own: no point ever
 * has level auto. */
struct sp_level_req {
  bool is_auto;
  enum sp_level level; /* when !is_auto */
};
/* "auto", "full", "inc" or "diff"; -1 for anything else. */
int sp_level_req_parse(const char *name, struct sp_level_req *out);
/* Back to its word ("auto" or the level's name). */
const char *sp_level_req_name(struct sp_level_req req);

#endif
