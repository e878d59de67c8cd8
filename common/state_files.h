/* A VM's state files on this machine: TPM state trees and NVRAM files
 * read into memory (one read each) and written back, and what a file is
 * and who may read it.  The bottom layer: host.h reads through these on
 * this machine, state_capture.h re-reads until stable and state_locator.h
 * finds the files, both through a host (files -> host -> capture/locate). */
#ifndef SP_STATE_FILES_H
#define SP_STATE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "sha256.h"

struct sp_blob {
  char *name;           /* file name inside its tree (no '/') */
  unsigned char *data;
  size_t len;
  mode_t mode;          /* permission bits */
  uid_t uid;
  gid_t gid;
  char sha256[SP_SHA256_HEX_LEN + 1];
  bool mapped;          /* data is a mapping of the file (sp_blob_map), not malloc'd */
};

struct sp_tree {
  struct sp_blob *files; /* sorted by name */
  size_t n;
  char digest[SP_SHA256_HEX_LEN + 1]; /* over names and file hashes */
};

/* What a name in a TPM state directory is, the rule every host's read
 * follows (sp_tree_read here, the SFTP read of agent/remote_host.c): ".",
 * ".." and swtpm's ".lock" are skipped, swtpm's "TMP*" temporaries are
 * reported (a write is under way), anything else is a file of the state,
 * which must be a regular file. */
enum sp_tree_entry { SP_TREE_SKIP, SP_TREE_TEMP, SP_TREE_FILE };
enum sp_tree_entry sp_tree_entry_kind(const char *name);

/* One read of a flat directory: regular files only, ".lock" and swtpm's
 * "TMP*" temp files left out (temp_present tells whether one was seen).
 * Anything that is not a regular file is an error: a state directory
 * holds none, and a symlink there is not ours to follow. */
int sp_tree_read(const char *dir, struct sp_tree *t, bool *temp_present, struct sp_err *e);
/* The same for a state directory inside a point (rel below dirfd, no
 * symlink on the way); a swtpm temporary there is refused. */
int sp_tree_read_at(int dirfd, const char *rel, struct sp_tree *t, struct sp_err *e);

/* Sorts a tree read by other means (a remote host) and computes its
 * digest, as sp_tree_read does. */
void sp_tree_finish(struct sp_tree *t);

/* One read of one file (NVRAM: a file or a block device).  Anything
 * larger than 256 MiB is refused before it is read. */
int sp_blob_read(const char *path, struct sp_blob *b, struct sp_err *e);
/* Reads an open file (a regular one or a block device) as sp_blob_read
 * does, named name. */
int sp_blob_read_fd(int fd, const char *name, struct sp_blob *b, struct sp_err *e);
/* As sp_blob_read, but a non-empty regular file is mapped (private,
 * read-only, populated) instead of copied: a 4 MiB NVRAM costs ~2 ms
 * instead of ~12 (fresh pages are expensive: docs/facts.md, "The
 * machine").  The file must not shrink while mapped: for a VM that is
 * off, or paused. */
int sp_blob_map(const char *path, struct sp_blob *b, struct sp_err *e);

/* Writes every file of t into the existing directory dirfd (fsynced, each
 * file with its recorded mode; owner kept when chown_files and we are
 * root).  Refuses names that are not plain file names. */
int sp_tree_write_at(int dirfd, const struct sp_tree *t, bool chown_files, struct sp_err *e);
int sp_blob_write_at(int dirfd, const char *name, const struct sp_blob *b, bool chown_file,
                     struct sp_err *e);

void sp_blob_free(struct sp_blob *b);
void sp_tree_free(struct sp_tree *t);

/* What stat says of a file, and whether this process may read it. */
struct sp_file_info {
  char *path;
  bool exists;
  bool readable;    /* by this process (effective ids) */
  uid_t uid;
  gid_t gid;
  mode_t mode;      /* permission bits only */
  long long size;
  char owner[64];   /* names, or numbers when unknown */
  char group[64];
};

int sp_file_info(const char *path, struct sp_file_info *fi, struct sp_err *e);
/* The name of a user or group, or its number when this host has none;
 * returns buf. */
const char *sp_user_name(uid_t uid, char *buf, size_t len);
const char *sp_group_name(gid_t gid, char *buf, size_t len);
void sp_file_info_free(struct sp_file_info *fi);

/* "P is owned by U:G mode 0700: run as root or add this user to group G" */
void sp_access_hint(const struct sp_file_info *fi, const char *what, char *buf, size_t size);

#endif
