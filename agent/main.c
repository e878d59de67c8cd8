/* stillpoint: consistent backup points of libvirt/QEMU VMs. */
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "commands.h"
#include "err.h"
#include "guardian.h"
#include "virt.h"

static const char usage[] =
  "usage: stillpoint COMMAND [options]\n"
  "\n"
  "commands:\n"
  "  backup DOMAIN     take a consistent backup point (disks, NVRAM, TPM at one instant)\n"
  "  list DOMAIN       list the points of a domain\n"
  "  prune DOMAIN|--all  keep the newest `keep` points without breaking a chain\n"
  "  restore POINT     bring a VM back from a point, with its TPM and NVRAM\n"
  "  verify POINT      check a point: checksums, manifest, images and chains, TPM state\n"
  "  inspect POINT     what a point's NVRAM and TPM hold; --against another point\n"
  "                    or --domain a VM's current state: what differs\n"
  "  mount POINT DIR   a point's disk read-only, its file systems under DIR\n"
  "  umount DIR        take down what mount set up on DIR\n"
  "  check DOMAIN      show what a backup point would capture; exit 3 if it could not run\n"
  "  config show [DOMAIN]  the effective policy and where each value comes from\n"
  "  hook install|uninstall|status   manage the libvirt hook (stillpoint-hook(8))\n"
  "  state list|restore DOMAIN      TPM/NVRAM snapshots the hook took at VM stop\n"
  "\n"
  "common options: -c URI (default qemu:///system; qemu+ssh://[user@]host[:port]/system\n"
  "                for a remote hypervisor), --ssh-key FILE, --json, --config FILE,\n"
  "                --set key=value, -q, -v, --help\n"
  "`stillpoint COMMAND --help` describes a command; man stillpoint(1) has the rest.\n";

static const struct {
  const char *name;
  int (*fn)(int, char **);
} commands[] = {
  { "backup", cmd_backup },
  { "check", cmd_check },
  { "config", cmd_config },
  { "list", cmd_list },
  { "prune", cmd_prune },
  { "restore", cmd_restore },
  { "verify", cmd_verify },
  { "hook", cmd_hook },
  { "state", cmd_state },
  { "inspect", cmd_inspect },
  { "mount", cmd_mount },
  { "umount", cmd_umount },
};

int main(int argc, char **argv)
{
  if (argc < 2) {
    fputs(usage, stderr);
    return SP_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    fputs(usage, stdout);
    return SP_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("stillpoint %s\n", STILLPOINT_VERSION);
    return SP_EXIT_OK;
  }
  if (strcmp(argv[1], "__guardian") == 0)
    return guardian_main(argc - 1, argv + 1);
  virt_quiet_errors();
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "stillpoint: unknown command '%s'\n%s", argv[1], usage);
  return SP_EXIT_USAGE;
}
