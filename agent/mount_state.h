/* What `stillpoint mount` set up for one directory, recorded in
 * /run/stillpoint/mounts/<key>/state.json (key: the first 16 hex digits of
 * the SHA-256 of the directory's absolute path) so that `stillpoint umount`,
 * or a later mount over a stale one, can take all of it down: the file
 * system mounts, the loop devices, nbdfuse, qemu-nbd, the socket.  The
 * state is written after every step, so a mount killed half-way is still
 * known.  Processes are recorded with their start time, so a reused pid is
 * never signalled. */
#ifndef SP_MOUNT_STATE_H
#define SP_MOUNT_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "own_dirs.h"

#define SP_MOUNT_RUN_ROOT SP_MOUNT_DIR
#define SP_MOUNT_STATE_FORMAT 1

struct proc_ref {
  pid_t pid;                  /* 0: not started */
  unsigned long long start;   /* field 22 of /proc/<pid>/stat */
};

struct mount_loop {
  char *dev;                  /* /dev/loopN */
  unsigned long long offset, size; /* of a partition's own loop; 0, 0: the whole disk */
};

struct mount_entry {
  char *source;               /* block device mounted */
  char *target;               /* the directory, or dir/<n> */
  char *type;                 /* file system */
  int partition;              /* 0: the whole disk */
  bool created;               /* target made by mount: umount removes it */
  bool no_replay;             /* mounted without replaying its journal */
};

struct mount_state {
  int format;
  char *dir;                  /* absolute, as given to mount */
  char *point;                /* the point directory */
  char *disk;                 /* target name of the disk */
  struct proc_ref qemu_nbd, nbdfuse;
  struct mount_loop *loops;
  size_t nloops;
  struct mount_entry *mounts;
  size_t nmounts;
};

/* run = SP_MOUNT_RUN_ROOT "/" key of dir (absolute). */
int mount_run_dir(const char *dir, char run[PATH_MAX], struct sp_err *e);

int mount_state_to_json(const struct mount_state *s, char **out, struct sp_err *e);
/* Strict: every path absolute and of its form (loop devices /dev/loopN,
 * mount targets the directory or below it, no "..") - the file is ours,
 * but whatever it names is unmounted, detached or signalled. */
int mount_state_parse(const char *text, size_t len, struct mount_state *s, struct sp_err *e);
void mount_state_free(struct mount_state *s);

/* state.json in run (0600, written atomically) / read from it; load sets
 * errno ENOENT when there is none. */
int mount_state_save(const struct mount_state *s, const char *run, struct sp_err *e);
int mount_state_load(const char *run, struct mount_state *s, struct sp_err *e);

int mount_state_add_loop(struct mount_state *s, const char *dev, unsigned long long offset,
                         unsigned long long size, struct sp_err *e);
int mount_state_add_mount(struct mount_state *s, const struct mount_entry *m, struct sp_err *e);

#endif
