/* A growing vector of owned strings, for the lists stillpoint builds one
 * name at a time (a directory's names, warnings, argv, keys).  It
 * allocates through xalloc.h, so a push cannot fail and a list has no
 * ENOMEM branch.  v stays NULL-terminated (NULL while empty), so it can be
 * handed to execv or to code that walks to the NULL. */
#ifndef SP_STRV_H
#define SP_STRV_H

#include <stddef.h>

struct sp_strv {
  char **v;  /* n strings and a NULL; NULL while empty */
  size_t n;
};
#define SP_STRV_INIT { 0 }

/* Appends a copy of s. */
void sp_strv_push(struct sp_strv *sv, const char *s);
/* Appends s itself: the vector owns it from now on. */
void sp_strv_push_take(struct sp_strv *sv, char *s);
size_t sp_strv_count(const struct sp_strv *sv);
/* Frees every string and the vector, and leaves it empty (SP_STRV_INIT):
 * the cleanup of a _cleanup_(sp_strv_free) variable. */
void sp_strv_free(struct sp_strv *sv);
/* Hands the array (NULL-terminated, NULL when empty) to the caller, who
 * frees each string and the array; the vector is left empty. */
char **sp_strv_steal(struct sp_strv *sv, size_t *n);

#endif
