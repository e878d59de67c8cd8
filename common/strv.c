#include "strv.h"

#include <stdlib.h>

#include "xalloc.h"

void sp_strv_push_take(struct sp_strv *sv, char *s)
{
  /* Room for s and the terminating NULL; one realloc a push keeps it
   * simple, the lists are short (names of a state directory, warnings). */
  sv->v = sp_xreallocarray(sv->v, sv->n + 2, sizeof *sv->v);
  sv->v[sv->n++] = s;
  sv->v[sv->n] = NULL;
}

void sp_strv_push(struct sp_strv *sv, const char *s)
{
  sp_strv_push_take(sv, sp_xstrdup(s));
}

size_t sp_strv_count(const struct sp_strv *sv)
{
  return sv->n;
}

void sp_strv_free(struct sp_strv *sv)
{
  for (size_t i = 0; i < sv->n; i++)
    free(sv->v[i]);
  free(sv->v);
  sv->v = NULL;
  sv->n = 0;
}

char **sp_strv_steal(struct sp_strv *sv, size_t *n)
{
  char **v = sv->v;
  if (n)
    *n = sv->n;
  sv->v = NULL;
  sv->n = 0;
  return v;
}
