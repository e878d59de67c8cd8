/* What stillpoint-copy is asked to do: the STILLPOINT_* environment of the
 * copier contract (docs/design.md, "The copier contract"), overridden by
 * command-line flags. */
#ifndef SP_COPY_OPTIONS_H
#define SP_COPY_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "level.h"


enum sp_progress_mode {
  SP_PROGRESS_AUTO,  /* live on a terminal, lines otherwise */
  SP_PROGRESS_LIVE,  /* one line rewritten in place */
  SP_PROGRESS_LINES, /* one line every interval */
  SP_PROGRESS_OFF,
};

#define SP_COPY_CLUSTER (64u * 1024)          /* cluster size of the images we create */
#define SP_COPY_MAX_REQUEST (32u * 1024 * 1024) /* the NBD limit qemu advertises */
#define SP_COPY_MAX_CONNECTIONS 16
#define SP_COPY_MAX_REQUESTS 256

struct copy_opts {
  char *uri, *disk, *output, *parent, *bitmap; /* bitmap: a full meta context name */
  uint64_t size;                               /* expected disk size; 0 = not given */
  enum sp_level level;
  bool compress;
  enum sp_progress_mode progress;
  double progress_interval; /* seconds between progress lines */
  uint64_t request_size;    /* bytes per read request */
  unsigned requests;        /* requests in flight (each holds one buffer) */
  unsigned connections;     /* source connections when the server allows multi-conn */
  /* An rbd: output (copier/rbd_copy.h): the Ceph client's configuration,
   * user, keyring and op timeout in seconds (NULL, 0: the defaults). */
  char *ceph_conf, *ceph_user, *ceph_keyring;
  unsigned ceph_timeout;
  unsigned stall_timeout_s; /* STILLPOINT_STALL_TIMEOUT_S; 0: none */
  bool help, version;
};

/* The environment as the parser sees it (getenv, or a table in tests). */
typedef const char *sp_getenv_fn(const char *name);

/* Fills o from env then argv; SP_EXIT_USAGE errors for anything wrong or
 * inconsistent.  With --help or --version nothing else is checked. */
int copy_opts_parse(int argc, char *argv[], sp_getenv_fn *env, struct copy_opts *o,
                    struct sp_err *e);
void copy_opts_free(struct copy_opts *o);

/* "123", "64K", "1M", "2G" (binary units) into bytes; -1 when malformed. */
int copy_parse_size(const char *s, uint64_t *out);

void copy_usage(FILE *out);
#endif
