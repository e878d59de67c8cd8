/* The machine a VM's state files live on: this one, or a hypervisor
 * reached over SSH (agent/remote_host.c).  Preflight, capture and restore go
 * through these operations, so one code path serves both; the pause
 * window then only adds the transfer of a few hundred KiB. */
#ifndef SP_HOST_H
#define SP_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "state_files.h"
#include "strv.h"

struct sp_host;

struct sp_host_ops {
  /* stat + "may this user read it" (a directory: list and search). */
  int (*file_info)(struct sp_host *h, const char *path, struct sp_file_info *fi,
                   struct sp_err *e);
  /* Appends the names in a directory to names, "." and ".." left out. */
  int (*list_dir)(struct sp_host *h, const char *dir, struct sp_strv *names,
                  struct sp_err *e);
  int (*read_blob)(struct sp_host *h, const char *path, struct sp_blob *b, struct sp_err *e);
  /* As sp_tree_read: a flat state directory into memory. */
  int (*read_tree)(struct sp_host *h, const char *dir, struct sp_tree *t, bool *temp,
                   struct sp_err *e);
  int (*read_text)(struct sp_host *h, const char *path, size_t max, char **buf, size_t *len,
                   struct sp_err *e);
  /* Names ("libvirt-qemu", or "+64055") to ids on that host. */
  int (*ids)(struct sp_host *h, const char *user, const char *group, uid_t *uid, gid_t *gid,
             struct sp_err *e);
  /* mkdir (the parent must exist) then chown and chmod. */
  int (*mkdir_owned)(struct sp_host *h, const char *path, mode_t mode, uid_t uid, gid_t gid,
                     struct sp_err *e);
  /* As sp_dir_ensure (fsutil.h): create or repair to this mode and owner. */
  int (*ensure_dir)(struct sp_host *h, const char *path, mode_t mode, uid_t uid, gid_t gid,
                    struct sp_err *e);
  int (*rm_rf)(struct sp_host *h, const char *path, struct sp_err *e);
  /* Writes path through a temporary sibling and a rename, owned and moded. */
  int (*write_file)(struct sp_host *h, const char *path, const void *data, size_t len,
                    mode_t mode, uid_t uid, gid_t gid, struct sp_err *e);
  /* Copies a local file to path on the host (must not exist), mode 0600. */
  int (*upload)(struct sp_host *h, const char *local, const char *path, struct sp_err *e);
  /* Creates path with data, never replacing anything there (a file, a
   * symlink): written under a temporary name, then renamed without
   * replacing.  Exit 3 when path exists. */
  int (*create_file)(struct sp_host *h, const char *path, const void *data, size_t len,
                     mode_t mode, uid_t uid, gid_t gid, struct sp_err *e);
  /* Renames within one directory, never replacing what is named to. */
  int (*rename)(struct sp_host *h, const char *from, const char *to, struct sp_err *e);
  bool (*exists)(struct sp_host *h, const char *path);
  void (*close)(struct sp_host *h);
};

struct sp_host {
  const struct sp_host_ops *ops;
  char name[256];   /* "localhost", or the remote host as the URI names it */
  bool remote;
  void *impl;
};

void sp_host_local(struct sp_host *h);
void sp_host_close(struct sp_host *h);

#endif
