/* Scope-bound release of json-c objects, in cleanup.h's vocabulary:
 * `_cleanup_json_ json_object *o = ...;`.  Beside cleanup.h rather than in
 * it, so only what uses json-c includes json-c. */
#ifndef SP_CLEANUP_JSON_H
#define SP_CLEANUP_JSON_H

#include <json-c/json.h>

#include "cleanup.h"

static inline void sp_json_putp(json_object **o) { if (*o) json_object_put(*o); }

#define _cleanup_json_ _cleanup_(sp_json_putp)

#endif
