/* The out-of-memory policy: stillpoint aborts on an allocation failure, as
 * libvirt and nbdcopy do.  A coordinator that cannot allocate a few bytes
 * cannot report, clean up or keep a VM consistent either, and a checked
 * ENOMEM branch that is never exercised is where a refusal or a message
 * gets lost; the guardian (a separate process) resumes and thaws if the
 * coordinator dies inside the window.  New code allocates through these;
 * the existing checked branches are converted as they are touched. */
#ifndef SP_XALLOC_H
#define SP_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

#define SP_XALLOC __attribute__((returns_nonnull, warn_unused_result))

SP_XALLOC void *sp_xmalloc(size_t size);
SP_XALLOC void *sp_xcalloc(size_t n, size_t size);
SP_XALLOC void *sp_xrealloc(void *p, size_t size);
/* As reallocarray: n * size checked for overflow. */
SP_XALLOC void *sp_xreallocarray(void *p, size_t n, size_t size);
/* As aligned_alloc: size a multiple of align. */
SP_XALLOC void *sp_xaligned_alloc(size_t align, size_t size);
SP_XALLOC char *sp_xstrdup(const char *s);
/* At most n bytes of s, NUL-terminated. */
SP_XALLOC char *sp_xstrndup(const char *s, size_t n);
SP_XALLOC __attribute__((format(printf, 1, 2))) char *sp_xasprintf(const char *fmt, ...);
SP_XALLOC __attribute__((format(printf, 1, 0))) char *sp_xvasprintf(const char *fmt, va_list ap);

#endif
