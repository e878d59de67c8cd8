#define SP_CEPH_LIB_TABLE
#include "ceph_lib.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* Written once under pthread_once, read-only from then on by every thread
 * (librbd's completion callbacks included): the one process-wide table,
 * as the dynamic linker's own would have been. */
static struct {
  struct sp_ceph_lib fns;
  bool loaded;
  char error[256];
} lib;

static void *open_lib(const char *soname)
{
  /* Never closed: Ceph's libraries keep threads and atexit handlers. */
  void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h && !lib.error[0])
    snprintf(lib.error, sizeof lib.error, "%s", dlerror());
  return h;
}

static void load_once(void)
{
  void *rados = open_lib("librados.so.2"), *rbd = open_lib("librbd.so.1");
  if (!rados || !rbd)
    return;
  const char *missing = NULL, *in = NULL;
#define SP_CEPH_LIB_FILL(h, soname, f) \
  if (!missing && !(lib.fns.f = (__typeof__(f) *)dlsym(h, #f))) { \
    missing = #f; \
    in = soname; \
  }
#define SP_CEPH_LIB_RADOS(f) SP_CEPH_LIB_FILL(rados, "librados.so.2", f)
#define SP_CEPH_LIB_RBD(f) SP_CEPH_LIB_FILL(rbd, "librbd.so.1", f)
  SP_CEPH_RADOS_FNS(SP_CEPH_LIB_RADOS)
  SP_CEPH_RBD_FNS(SP_CEPH_LIB_RBD)
  if (missing)
    snprintf(lib.error, sizeof lib.error, "%s has no %s (a Ceph release older than 16.2?)",
             in, missing);
  lib.loaded = !missing;
}

int sp_ceph_lib_load(struct sp_err *e)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, load_once);
  if (!lib.loaded)
    return sp_err_set(e, SP_EXIT_FAILED,
                      "Ceph's client libraries cannot be loaded: %s (install librados2 and "
                      "librbd1 on this host to use Ceph pools)",
                      lib.error);
  return 0;
}

const struct sp_ceph_lib *sp_ceph_lib(void)
{
  if (!lib.loaded) {
    fputs("stillpoint: internal error: Ceph used before sp_ceph_lib_load\n", stderr);
    abort();
  }
  return &lib.fns;
}
