/* The domain XML libvirt writes on the hook's stdin: read whole, within
 * the time bound, and always to its end so that libvirt's write never
 * meets a closed pipe. */
#ifndef SP_HOOK_INPUT_H
#define SP_HOOK_INPUT_H

#include <stddef.h>

#include "err.h"

/* Reads fd to EOF or until deadline_ms (sp_now_ms clock).  More than max
 * bytes are read and dropped, and reported as an error, as is the
 * deadline.  *buf is NUL-terminated. */
int hook_read_input(int fd, size_t max, long long deadline_ms, char **buf, size_t *len,
                    struct sp_err *e);

#endif
