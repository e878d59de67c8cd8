/* The output's life: it is written as <output>.part and appears under
 * its real name only once complete and durable, so nothing half-written
 * ever carries the name the coordinator (or a restore) trusts.  The path
 * is never followed through a symlink, and an existing output is never
 * replaced. */
#ifndef SP_COPY_PART_FILE_H
#define SP_COPY_PART_FILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

/* Declare as PART_FILE_INIT: part_discard is safe on it. */
#define PART_FILE_INIT { .fd = -1 }

struct part_file {
  char *dir;     /* canonical directory of the output (created 0700 if missing) */
  char *part;    /* <dir>/<name>.part, absolute */
  char *final;   /* <dir>/<name>, absolute */
  int fd;        /* the .part we created; held to fsync it and to know it is ours */
  dev_t dev;
  ino_t ino;
};

/* Refuses an output that exists in any form (file, symlink, dangling
 * symlink, directory); nothing is created. */
int part_preflight(const char *output, struct sp_err *e);
/* Creates the output's directory if missing and an empty <output>.part
 * (O_EXCL, mode 0600); p must be PART_FILE_INIT. */
int part_create(struct part_file *p, const char *output, struct sp_err *e);
/* Whether <output>.part still is the file we created (nobody swapped it
 * for a symlink while qemu-img had it). */
int part_check(const struct part_file *p, struct sp_err *e);
/* fsync, rename to the output without replacing anything, fsync the directory. */
int part_commit(struct part_file *p, struct sp_err *e);
/* Removes the .part unless committed; frees.  For _cleanup_. */
void part_discard(struct part_file *p);

#endif
