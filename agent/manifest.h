/* manifest.json of a backup point (its format: stillpoint-point(5)):
 * the only thing restore and list read.  Parsing is strict because a
 * manifest comes from a backup directory, which is input like any other:
 * every path must stay inside its point, every id and hash must have its
 * form, or the manifest is refused with the field named. */
#ifndef SP_MANIFEST_H
#define SP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "level.h"
#include "sha256.h"
#include "strv.h"

#define SP_MANIFEST_FORMAT 1
/* A point in Ceph: disks are RBD snapshots (disks[].rbd_image and
 * rbd_snapshot instead of file and parent_file), docs/design.md "Points in
 * Ceph".  Another layout, so another format: a directory reader refuses it
 * (sp_manifest_load) rather than misread it. */
#define SP_MANIFEST_FORMAT_RBD 2

struct sp_manifest_disk {
  char *target;       /* vda */
  char *source;       /* path on the host when taken (may be NULL: network) */
  char *format;       /* of the VM's disk: qcow2 | raw */
  enum sp_level level; /* how this disk was copied */
  char *file;         /* disks/vda.qcow2 */
  char *parent_file;  /* backing file as written in the overlay, NULL for full */
  char *copier;
  /* The format of `file` as the copier wrote it (qcow2 | raw), recorded
   * from copier_format; every reader opens the image as this, never as
   * its first bytes claim.  Inferred for points written before it was
   * recorded (sp_manifest_parse). */
  char *image_format;
  char *rbd_image;    /* format 2: the disk's RBD image in the point's pool */
  char *rbd_snapshot; /* format 2: its snapshot that is this point's disk */
  unsigned long long size;
  unsigned long long bytes_written;
  double seconds;
};

struct sp_manifest_skip {
  char *target;
  char *reason;
};

struct sp_manifest_file {
  char *name;
  char sha256[SP_SHA256_HEX_LEN + 1];
  unsigned mode;
  long long size;
};

/* NVRAM (one file) or TPM (a directory of files). */
struct sp_manifest_state {
  bool present;
  char *host_path;     /* NVRAM file / TPM state dir on the host */
  char *path;          /* in the point: nvram/<name> or tpm/<tpm2|tpm1.2> */
  char *type;          /* NVRAM: file | block */
  char *format;        /* NVRAM format if the XML gave one */
  char *template_path; /* NVRAM template */
  char *version;       /* TPM: 2.0 | 1.2 */
  char *owner, *group;
  unsigned mode;       /* of the NVRAM file / the TPM state dir */
  char *secret_uuid;   /* TPM encryption secret */
  struct sp_manifest_file *files; /* NVRAM: one; TPM: the tree */
  size_t nfiles;
};

struct sp_manifest_window {
  char *freeze_at, *paused_at, *resumed_at, *thawed_at; /* ISO 8601 UTC, ms; NULL if n/a */
  double pause_ms;     /* suspend returned .. resume returned, our clock */
  double freeze_ms;    /* freeze answered .. thaw answered */
  int frozen;          /* file systems the agent froze */
  int thawed;
  bool paused;         /* we paused the VM (it ran before) */
  bool consistent;     /* disks, NVRAM and TPM from one instant */
  int capture_reads;   /* reads until the TPM tree was stable */
};

/* Where a backup's time went, milliseconds of wall time per phase, as
 * measured by the writer (docs/design.md, "The backup point protocol").
 * Only what happened before manifest.json was written: SHA256SUMS, the
 * directory fsyncs and the rename come after it and show in --verbose. */
struct sp_manifest_timings {
  bool present;        /* points written before timings have none */
  double prepare_ms;   /* preflight, chain plan, scratch files, guardian */
  double window_ms;    /* freeze, pause, capture, begin, resume, thaw */
  double state_ms;     /* domain.xml, checkpoint.xml, NVRAM, TPM written */
  double copy_ms;      /* every copier, start to last exit */
  double job_end_ms;   /* the pull job's end asked for (its teardown overlaps hashing) */
  double check_ms;     /* the copiers' images checked (header, backing) */
  double hash_ms;      /* the images hashed for SHA256SUMS */
  double fsync_ms;     /* the images fsynced */
};

struct sp_manifest {
  int format;
  char *tool, *host;
  char *domain, *uuid;
  char *id;
  enum sp_level level;
  char *parent, *full; /* full: the chain's full point id */
  char *checkpoint, *parent_checkpoint;
  char *created;
  bool offline;        /* the VM was shut off: started paused for the job */
  struct sp_manifest_disk *disks;
  size_t ndisks;
  struct sp_manifest_skip *skipped;
  size_t nskipped;
  struct sp_manifest_state nvram, tpm;
  struct sp_manifest_window window;
  struct sp_manifest_timings timings;
  struct sp_strv warnings;
};

/* Serialises (pretty, no "\/" escapes); *out is malloc'd. */
int sp_manifest_to_json(const struct sp_manifest *m, char **out, struct sp_err *e);
/* Either format; the caller checks m->format is the one its layout has. */
int sp_manifest_parse(const char *text, size_t len, struct sp_manifest *m, struct sp_err *e);
/* Reads <point_dir>/manifest.json (a regular file of at most 64 MiB, not a
 * FIFO, not a link: sp_read_file_at); format 1 only. */
int sp_manifest_load(const char *point_dir, struct sp_manifest *m, struct sp_err *e);
/* The same below an open point directory; point_dir names it in errors. */
int sp_manifest_load_at(int point_fd, const char *point_dir, struct sp_manifest *m,
                        struct sp_err *e);
void sp_manifest_free(struct sp_manifest *m);

const struct sp_manifest_disk *sp_manifest_disk(const struct sp_manifest *m, const char *target);
/* Appends a copy of a warning (never fails: xalloc.h). */
void sp_manifest_warn(struct sp_manifest *m, const char *text);

/* Form checks shared with restore and verify. */
bool sp_hex64_valid(const char *s);
/* A disk target name: 1 to 32 letters, digits, '_' or '-' (vda, sdb,
 * nvme0n1): safe as a file name and inside an XPath literal. */
bool sp_target_valid(const char *s);

#endif
