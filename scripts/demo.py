"""The demo behind ./demo: a throwaway VM with OVMF and an swtpm TPM, and
stillpoint run on it. Prints what it runs and what stillpoint answers."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import libvirt  # noqa: E402
import sp_vm  # noqa: E402

STILLPOINT = os.path.join(ROOT, "build", "agent", "stillpoint")


def step(title, argv):
    print(f"\n$ {' '.join(argv)}", flush=True)
    rc = subprocess.run(argv).returncode
    if rc != 0:
        raise SystemExit(f"demo: {title} failed with exit {rc}")


def main():
    sp_vm.ensure_libvirt()
    conn = libvirt.open(sp_vm.URI)
    vm = sp_vm.TestVM(conn, tag="demo")
    try:
        print(f"demo: created {vm.name}: q35, OVMF Secure Boot firmware, swtpm TPM 2.0, "
              "two qcow2 disks and a raw one; starting it", flush=True)
        vm.start()
        step("check", [STILLPOINT, "check", vm.name])
    finally:
        vm.remove()
        print(f"\ndemo: removed {vm.name}")


if __name__ == "__main__":
    main()
