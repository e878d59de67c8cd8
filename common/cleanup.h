/* Scope-bound cleanup helpers: every owned resource in stillpoint is
 * released by the variable's scope ending, so a function has one error
 * path and nothing leaks on it.
 *
 * One vocabulary, spelled one way:
 *   _cleanup_free_, _cleanup_close_, ...   a library handle: the macro is
 *       defined beside its type (here for libc; cleanup_json.h, cleanup_xml.h,
 *       agent/virt.h for libvirt, ceph/ceph_client.h for librados);
 *   _cleanup_(type_free) struct type v = TYPE_INIT;   one of ours: the
 *       type's own free function, which takes a pointer to it, and its
 *       *_INIT (every struct holding a descriptor or a pid has one, so a
 *       cleanup never closes fd 0 or signals pid 0).
 * Never __attribute__((cleanup(...))) spelled out. */
#ifndef SP_CLEANUP_H
#define SP_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void sp_freep(void *p) { free(*(void **)p); }
static inline void sp_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void sp_fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void sp_closedirp(DIR **d) { if (*d) closedir(*d); }

#define _cleanup_free_ _cleanup_(sp_freep)
#define _cleanup_close_ _cleanup_(sp_closep)
#define _cleanup_fclose_ _cleanup_(sp_fclosep)
#define _cleanup_closedir_ _cleanup_(sp_closedirp)

/* Hand ownership to the caller: the cleanup then sees NULL / -1. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _v = *(pp); *(pp) = NULL; _v; })
#define steal_fd(fdp) ({ int _fd = *(fdp); *(fdp) = -1; _fd; })

#endif
