/* Putting TPM state and NVRAM back where libvirt looks for them, owned
 * and moded as libvirt makes them, so that libvirt and swtpm use them as
 * their own: the hook's recovery at VM start and `stillpoint state
 * restore` both come here.  The VM must be off. */
#ifndef SP_STATE_INSTALL_H
#define SP_STATE_INSTALL_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "state_files.h"

/* What a TPM state directory looks like before a VM start.  libvirt
 * (qemuTPMEmulatorCreateStorage) runs swtpm_setup, a brand-new TPM, when
 * the directory is missing or holds nothing but hidden files; a directory
 * without the state file gives swtpm an unmanufactured TPM.  Either way
 * the VM's TPM identity is lost unless something is put back. */
enum sp_tpm_presence {
  SP_TPM_PRESENT,        /* the state file is there */
  SP_TPM_DIR_MISSING,
  SP_TPM_DIR_EMPTY,      /* nothing but hidden files (swtpm's .lock) */
  SP_TPM_FILE_MISSING,   /* other files, but not the state file */
};

/* "tpm2-00.permall" (tpm2) or "tpm-00.permall" (tpm1.2): the file swtpm
 * keeps the TPM's permanent state in. */
const char *sp_tpm_state_file(const char *subdir);
enum sp_tpm_presence sp_tpm_presence(const char *state_dir, const char *subdir);
const char *sp_tpm_presence_str(enum sp_tpm_presence p);

/* The swtpm_user and swtpm_group of qemu.conf (path), as ids. */
int sp_swtpm_ids(const char *qemu_conf, uid_t *uid, gid_t *gid, struct sp_err *e);

/* Installs the files of t as state_dir: the parent is created 0711 when
 * missing (as libvirt does), the directory is 0700 and every file 0600,
 * all owned uid:gid.  Written into a sibling directory, fsynced, then
 * renamed into place, so a crash leaves the old state or the new one.
 * An old directory with files in it is renamed to
 * <state_dir>.replaced-<UTC time> (its path in *kept_as, malloc'd) when
 * keep_old, else removed once the new one is in place. */
int sp_tpm_install(const char *state_dir, const struct sp_tree *t, uid_t uid, gid_t gid,
                   bool keep_old, char **kept_as, struct sp_err *e);

/* Writes an NVRAM file (regular file only) with b's mode and owner,
 * atomically within its directory. */
int sp_nvram_install(const char *path, const struct sp_blob *b, struct sp_err *e);

#endif
