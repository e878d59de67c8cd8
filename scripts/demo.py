"""The demo behind ./demo: a throwaway VM with OVMF Secure Boot firmware and an
swtpm TPM 2.0; a full and an incremental backup point of it; the newest point
restored as a new VM; proof that its disks, TPM state and NVRAM came back.
Prints every command it runs and what stillpoint answers. Everything it made
is removed at the end."""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import libvirt  # noqa: E402
import sp_vm  # noqa: E402

BIN = os.path.join(ROOT, "build", "agent")
STILLPOINT = os.path.join(BIN, "stillpoint")


class Steps:
    """Elapsed time per step, printed as each ends and as a table at the end,
    so a slow demo says where its time went."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.done = []
        setup = os.environ.get("STILLPOINT_DEMO_SETUP_S")
        if setup:  # ./demo: packages and the build, before this script ran
            self.done.append(("host setup and build (./demo)", float(setup)))

    @contextlib.contextmanager
    def step(self, name):
        t = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - t
            self.done.append((name, took))
            print(f"demo: [{time.monotonic() - self.t0:6.1f} s] {name}: {took:.1f} s", flush=True)

    def table(self):
        print("\ndemo: time per step")
        for name, took in self.done:
            print(f"  {took:7.1f} s  {name}")
        print(f"  {sum(t for _, t in self.done):7.1f} s  in all", flush=True)


def sh(argv, capture=False):
    shown = " ".join(a if " " not in a else repr(a) for a in argv)
    print(f"\n$ {shown.replace(BIN + '/', '')}", flush=True)
    cp = subprocess.run(argv, capture_output=capture, text=True)
    if capture:
        sys.stderr.write(cp.stderr)
    if cp.returncode != 0:
        raise SystemExit(f"demo: {argv[1]} failed with exit {cp.returncode}")
    return cp.stdout if capture else None


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    steps = Steps()
    with steps.step("connect to libvirt"):
        sp_vm.ensure_libvirt()
        conn = libvirt.open(sp_vm.URI)
    work = tempfile.mkdtemp(prefix="stillpoint-demo-", dir="/var/tmp")
    os.chmod(work, 0o711)
    conf = os.path.join(work, "conf")
    os.makedirs(os.path.join(conf, "vm.d"))
    os.environ["STILLPOINT_CONFDIR"] = conf  # the demo ignores /etc/stillpoint
    target = os.path.join(work, "points")
    restored = sp_vm.unique_name("demo-restored")
    vm = None
    try:
        with steps.step("define the VM and its disks"):
            vm = sp_vm.TestVM(conn, tag="demo")
        print(f"demo: {vm.name}: q35, OVMF Secure Boot firmware, swtpm TPM 2.0, two qcow2 "
              "disks and a raw one; starting it (it sits in the firmware)", flush=True)
        with steps.step("start it; the firmware writes NVRAM and TPM until it settles"):
            vm.start()
            vm.wait_settled()
        with steps.step("stillpoint check"):
            sh([STILLPOINT, "check", vm.name])
        vm.write("vda", 0x11, 0, 4 << 20)
        with steps.step("full point"):
            full = json.loads(sh([STILLPOINT, "backup", vm.name, "--target", target, "--json"],
                                 capture=True))
        print("demo: the guest writes 1 MiB between the points", flush=True)
        with steps.step("guest write, firmware settles"):
            vm.write("vda", 0x22, 8 << 20, 1 << 20)
            vm.wait_settled()
        with steps.step("incremental point"):
            inc = json.loads(sh([STILLPOINT, "backup", vm.name, "--target", target, "--json"],
                                capture=True))
        with steps.step("list and verify"):
            sh([STILLPOINT, "list", vm.name, "--target", target])
            sh([STILLPOINT, "verify", inc["path"]])
        print(f"\ndemo: {full['id']} paused the VM {full['window']['pause_ms']:.0f} ms, "
              f"{inc['id']} {inc['window']['pause_ms']:.0f} ms; the incremental wrote "
              f"{inc['disks'][0]['bytes_written'] / 1048576:.1f} MiB of vda", flush=True)

        disks = os.path.join(work, "restored")
        os.mkdir(disks)
        os.chmod(disks, 0o711)
        with steps.step("restore as a new VM"):
            out = sh([STILLPOINT, "restore", inc["path"], "--name", restored, "--disks-to",
                      disks, "--define", "--json"], capture=True)
        r = json.loads(out)
        with steps.step("compare TPM, NVRAM and disk with the source"):
            tpm = os.path.join(r["tpm"], "tpm2-00.permall")
            same_tpm = sha(tpm) == inc["tpm"]["files"][0]["sha256"]
            same_nv = sha(r["nvram"]) == inc["nvram"]["files"][0]["sha256"]
            vm.dom.suspend()
            try:
                src = vm.snapshot_disk("vda", os.path.join(work, "vda-now.raw"))
            finally:
                vm.dom.resume()
            same_disk = subprocess.run(["qemu-img", "compare", "-q", src,
                                        os.path.join(disks, "vda.qcow2")]).returncode == 0
        print(f"\ndemo: restored as {restored} (UUID {r['uuid']})")
        print(f"demo:   TPM state  {tpm}: {'the point' + chr(39) + 's, byte for byte' if same_tpm else 'DIFFERENT'}")
        print(f"demo:   NVRAM      {r['nvram']}: {'the point' + chr(39) + 's, byte for byte' if same_nv else 'DIFFERENT'}")
        print(f"demo:   disk vda   {os.path.join(disks, 'vda.qcow2')}: "
              f"{'equal to the source (qemu-img compare)' if same_disk else 'DIFFERENT'}")
        with steps.step("start the restored VM"):
            dom = conn.lookupByName(restored)
            dom.create()
            log = f"/var/log/swtpm/libvirt/qemu/{restored}-swtpm.log"
            # swtpm_setup runs before QEMU starts: its log line is there by now.
            fresh = os.path.exists(log) and "swtpm_setup" in open(log, errors="replace").read()
            running = dom.isActive()
        print(f"demo:   started it: {'running' if running else 'NOT running'}, with "
              f"{'a NEW TPM (swtpm_setup ran)' if fresh else 'its own TPM (no swtpm_setup)'}")
        dom.destroy()
        if not (same_tpm and same_nv and same_disk and running and not fresh):
            raise SystemExit("demo: the restore did not bring everything back")
    finally:
        with steps.step("remove both VMs and their files"):
            try:
                d = conn.lookupByName(restored)
                if d.isActive():
                    d.destroy()
                d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM |
                                libvirt.VIR_DOMAIN_UNDEFINE_TPM)
            except libvirt.libvirtError:
                pass
            if vm:
                vm.remove()
            shutil.rmtree(work, ignore_errors=True)
        print(f"\ndemo: removed {vm.name if vm else 'the demo VM'}, {restored} and their files")
        steps.table()


if __name__ == "__main__":
    main()
