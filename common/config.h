/* The INI policy: built-in defaults < stillpoint.conf < vm.d/<domain>.conf
 * < --config FILE < --set key=value.  Every value is checked when it is
 * read, and remembers where it came from (for "config show"). */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum sp_key {
  SP_KEY_TARGET,
  SP_KEY_ENABLED,
  SP_KEY_FREEZE,
  SP_KEY_FREEZE_TIMEOUT_S,
  SP_KEY_FREEZE_MOUNTPOINTS,
  SP_KEY_PAUSE,
  SP_KEY_PAUSE_MAX_MS,
  SP_KEY_TPM,
  SP_KEY_NVRAM,
  SP_KEY_LEVEL,
  SP_KEY_FULL_EVERY,
  SP_KEY_KEEP,
  SP_KEY_COPIER,
  SP_KEY_COPIER_FORMAT,
  SP_KEY_PARALLEL,
  SP_KEY_STALL_TIMEOUT_S,
  SP_KEY_RUN_TIMEOUT_S,
  SP_KEY_MAX_PARALLEL_VMS,
  SP_KEY_SCRATCH_DIR,
  SP_KEY_TRANSPORT,
  SP_KEY_NBD_HOST,
  SP_KEY_NBD_PORT_MIN,
  SP_KEY_NBD_PORT_MAX,
  SP_KEY_TLS_CLIENT_DIR,
  SP_KEY_SSH_KEY,
  SP_KEY_OFFLINE,
  SP_KEY_SNAPSHOT_ON_STOP,
  SP_KEY_KEEP_SNAPSHOTS,
  SP_KEY_RECOVER_TPM,
  SP_KEY_BLOCK_START_ON_TPM_LOSS,
  SP_KEY_STATE_DIR,
  SP_KEY_BACKUP_ON_STOP,
  SP_KEY_CEPH_CONF,
  SP_KEY_CEPH_USER,
  SP_KEY_CEPH_KEYRING,
  SP_KEY_CEPH_TIMEOUT_S,
  SP_KEY_STILLPOINT_BINARY,
  SP_KEY__COUNT
};

enum sp_key_type { SP_T_STRING, SP_T_PATH, SP_T_INT, SP_T_ENUM, SP_T_BOOL };

struct sp_key_def {
  const char *name;
  const char *section;        /* "defaults" or "hook" */
  enum sp_key_type type;
  const char *def;            /* built-in default, as text */
  const char *const *choices; /* SP_T_ENUM: NULL-terminated; SP_T_INT: words
                               * accepted beside numbers, or NULL */
  long min, max;              /* SP_T_INT */
  bool allow_empty;
};

struct sp_config {
  char *value[SP_KEY__COUNT];
  char *source[SP_KEY__COUNT]; /* "built-in default", "FILE:LINE", "--set" */
};

struct sp_config_args {
  const char *domain;        /* NULL: no vm.d file */
  const char *config_file;   /* --config, NULL if none */
  const char *const *sets;   /* --set key=value, nsets of them */
  size_t nsets;
  const char *confdir;       /* NULL: $STILLPOINT_CONFDIR or /etc/stillpoint */
};

const struct sp_key_def *sp_config_key_def(enum sp_key k);
/* Finds "key" or "section.key"; -1 when unknown. */
int sp_config_key_lookup(const char *name);

int sp_config_load(struct sp_config *cfg, const struct sp_config_args *a, struct sp_err *e);
/* Applies one INI file on top of cfg; missing_ok for the optional files. */
int sp_config_apply_file(struct sp_config *cfg, const char *path, bool missing_ok,
                         struct sp_err *e);
/* Applies "key=value" (or "section.key=value") from the command line. */
int sp_config_apply_set(struct sp_config *cfg, const char *assignment, struct sp_err *e);
void sp_config_free(struct sp_config *cfg);

const char *sp_config_str(const struct sp_config *c, enum sp_key k);
/* An int key's number; 0 when it holds one of its words (parallel = auto),
 * which sp_config_is() then names. */
long sp_config_int(const struct sp_config *c, enum sp_key k);
bool sp_config_bool(const struct sp_config *c, enum sp_key k);
/* True when an enum key (or an int key's word) currently holds the given
 * choice; a choice not in the key's table aborts (a caller's typo, never
 * the user's). */
bool sp_config_is(const struct sp_config *c, enum sp_key k, const char *choice);

#endif
