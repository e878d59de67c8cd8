/* The copier contract's environment (docs/design.md, "The copier
 * contract"; stillpoint(1)): the names the coordinator sets for each
 * copier (agent/backup_copy.c) and the default copier reads
 * (copier/options.c), written once so the two cannot drift apart. */
#ifndef SP_COPIER_CONTRACT_H
#define SP_COPIER_CONTRACT_H

#define SP_ENV_NBD_URI "STILLPOINT_NBD_URI"
#define SP_ENV_DISK "STILLPOINT_DISK"
#define SP_ENV_DISK_SIZE "STILLPOINT_DISK_SIZE"
#define SP_ENV_LEVEL "STILLPOINT_LEVEL"
#define SP_ENV_BITMAP "STILLPOINT_BITMAP"
#define SP_ENV_OUTPUT "STILLPOINT_OUTPUT"
#define SP_ENV_PARENT_OUTPUT "STILLPOINT_PARENT_OUTPUT"
#define SP_ENV_POINT_DIR "STILLPOINT_POINT_DIR"
#define SP_ENV_DOMAIN "STILLPOINT_DOMAIN"
#define SP_ENV_DOMAIN_UUID "STILLPOINT_DOMAIN_UUID"
#define SP_ENV_CHECKPOINT "STILLPOINT_CHECKPOINT"
#define SP_ENV_STALL_TIMEOUT_S "STILLPOINT_STALL_TIMEOUT_S"
#define SP_ENV_CEPH_CONF "STILLPOINT_CEPH_CONF"
#define SP_ENV_CEPH_USER "STILLPOINT_CEPH_USER"
#define SP_ENV_CEPH_KEYRING "STILLPOINT_CEPH_KEYRING"
#define SP_ENV_CEPH_TIMEOUT "STILLPOINT_CEPH_TIMEOUT"

#endif
