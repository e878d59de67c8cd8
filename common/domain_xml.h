/* What stillpoint needs to know of a libvirt domain, read from its XML:
 * disks, the UEFI NVRAM and loader, the TPM, the guest agent channel.
 * Works on live and inactive XML (libvirt 9.0 puts the firmware paths of
 * <os firmware='efi'> only in the live XML). */
#ifndef SP_DOMAIN_XML_H
#define SP_DOMAIN_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct sp_disk {
  char *target;   /* vda */
  char *device;   /* disk | cdrom | floppy | lun */
  char *bus;      /* virtio | sata | scsi | ... */
  char *type;     /* file | block | network | volume | dir */
  char *source;   /* file path or block device; NULL when empty/network */
  char *format;   /* driver type: qcow2 | raw | ... */
  bool backup_no; /* <disk backup='no'> */
  bool readonly;
  bool shareable;
  bool removable; /* cdrom or floppy */
};

enum sp_nvram_type { SP_NVRAM_NONE, SP_NVRAM_FILE, SP_NVRAM_BLOCK, SP_NVRAM_NETWORK };

struct sp_nvram {
  enum sp_nvram_type type;
  char *path;     /* file or block device */
  char *format;   /* raw | qcow2 (libvirt >= 9.2), NULL if not given */
  char *template_path;
};

struct sp_loader {
  bool present;
  char *path;
  char *type;     /* pflash | rom */
  bool readonly;
  bool secure;
  bool stateless;
};

enum sp_tpm_backend { SP_TPM_NONE, SP_TPM_EMULATOR, SP_TPM_PASSTHROUGH, SP_TPM_OTHER };

struct sp_tpm {
  enum sp_tpm_backend backend;
  char *model;        /* tpm-crb | tpm-tis | ... */
  char *version;      /* "2.0" | "1.2" (emulator) */
  char *secret_uuid;  /* <encryption secret=...>, NULL when not encrypted */
  char *source_path;  /* <source type='dir' path=...> of newer libvirt */
  char *device_path;  /* passthrough device */
  bool persistent_state;
};

struct sp_domain {
  char *name;
  char *uuid;
  bool running;       /* live XML with an id */
  bool firmware_efi;  /* <os firmware='efi'> */
  struct sp_disk *disks;
  size_t ndisks;
  struct sp_nvram nvram;
  struct sp_loader loader;
  struct sp_tpm tpm;
  bool agent_configured;
  bool agent_connected; /* live XML: target state='connected' */
  /* The live XML's <seclabel model=...> other than type='none': which
   * security driver confines this VM's QEMU. */
  bool confined_apparmor;
  bool confined_selinux;
};

int sp_domain_parse(const char *xml, size_t len, struct sp_domain *d, struct sp_err *e);
void sp_domain_free(struct sp_domain *d);
const struct sp_disk *sp_domain_disk(const struct sp_domain *d, const char *target);

/* Why a disk is left out of a backup point, or NULL when it is copied. */
const char *sp_disk_skip_reason(const struct sp_disk *disk);
/* Whether libvirt can keep a dirty bitmap for it (qcow2 only). */
bool sp_disk_can_bitmap(const struct sp_disk *disk);

#endif
