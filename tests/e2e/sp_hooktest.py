"""The hook tests' bed: stillpoint-hook installed into the real libvirtd.

libvirtd runs every executable of /etc/libvirt/hooks/qemu.d for EVERY VM on
this host (other engineers' test VMs included), with a bare environment (no
STILLPOINT_CONFDIR), and this host has no syslog. So the bed:

- installs, with `stillpoint hook install --hook-binary`, the fixed wrapper
  hookwrap.sh copied into a private directory, beside a conf/ directory and a
  link to the built hook; the wrapper sets STILLPOINT_CONFDIR to that conf/ and
  appends the hook's log lines to hook.log there;
- writes a global policy that does nothing (snapshot_on_stop = no,
  recover_tpm = off, state_dir inside the bed), and a vm.d/<name>.conf per test
  VM that turns on what its test needs: other VMs see the hook do nothing, and
  no state dir of theirs is ever created;
- tells libvirtd with SIGHUP (never a restart: other tests use it);
- holds /run/stillpoint-hooktest.lock meanwhile, so two test runs on one
  host take turns instead of replacing each other's link;
- always uninstalls in the fixture's teardown. Should a run die before that,
  the link points into a deleted temp directory: libvirt skips a hook that is
  not an executable file, so it can never fail anyone's VM start.
"""
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

from conftest import run

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_LINK = "/etc/libvirt/hooks/qemu.d/stillpoint"
BED_LOCK = "/run/stillpoint-hooktest.lock"
SWTPM_LOG = "/var/log/swtpm/libvirt/qemu/{name}-swtpm.log"
MANUFACTURE = "Starting vTPM manufacturing"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree_hashes(d):
    """{name: sha256} of a flat state directory, swtpm's lock left out."""
    return {n: sha256(os.path.join(d, n)) for n in sorted(os.listdir(d)) if n != ".lock"}


def libvirtd_reload():
    """SIGHUP: libvirtd re-scans its hook directories (a restart would
    disturb the other engineers' VMs and tests)."""
    pid = int(subprocess.run(["pidof", "libvirtd"], check=True, capture_output=True,
                             text=True).stdout.split()[0])
    os.kill(pid, signal.SIGHUP)
    # The reload runs in libvirtd's main loop; give it a moment.
    time.sleep(1.0)


def write_policy(path, keys):
    with open(path, "w") as f:
        f.write("[hook]\n")
        for k, v in keys.items():
            f.write(f"{k} = {v}\n")


class HookBed:
    def __init__(self, bins, root):
        self.bins = bins
        self.root = str(root)
        self.conf = os.path.join(self.root, "conf")
        self.state_dir = os.path.join(self.root, "state")
        self.log_path = os.path.join(self.root, "hook.log")
        self.wrapper = os.path.join(self.root, "hookwrap.sh")
        os.makedirs(os.path.join(self.conf, "vm.d"))
        shutil.copy(os.path.join(HERE, "hookwrap.sh"), self.wrapper)
        os.chmod(self.wrapper, 0o755)
        os.symlink(bins.hook, os.path.join(self.root, "stillpoint-hook"))
        open(self.log_path, "w").close()
        write_policy(os.path.join(self.conf, "stillpoint.conf"), {
            "snapshot_on_stop": "no", "recover_tpm": "off",
            "block_start_on_tpm_loss": "no", "state_dir": self.state_dir})
        self.env = {"STILLPOINT_CONFDIR": self.conf}
        self.lock_fd = None

    # -- install into libvirtd ------------------------------------------------
    def install(self):
        # One bed at a time on this host: a second test run would replace our
        # link, and our VMs' hooks would read its configuration.
        self.lock_fd = os.open(BED_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        r = run([self.bins.stillpoint, "hook", "install", "--hook-binary", self.wrapper])
        assert r.rc == 0, r
        libvirtd_reload()

    def uninstall(self):
        try:
            if os.path.islink(HOOK_LINK) and os.readlink(HOOK_LINK) == self.wrapper:
                r = run([self.bins.stillpoint, "hook", "uninstall"])
                assert r.rc == 0, r
        finally:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None

    # -- per-VM policy and what the hook left ------------------------------------
    def policy(self, name, **keys):
        """Turns the hook on for one VM: snapshot_on_stop=yes unless given."""
        keys.setdefault("snapshot_on_stop", "yes")
        write_policy(os.path.join(self.conf, "vm.d", f"{name}.conf"), keys)

    def log_size(self):
        return os.path.getsize(self.log_path)

    def log(self, name, since=0):
        """The hook's log lines about one domain, after offset since."""
        with open(self.log_path, errors="replace") as f:
            f.seek(since)
            return [l for l in f.read().splitlines() if f": {name}:" in l]

    def returned_ms(self, name, op, since=0):
        """The wall times (ms) of the hook's calls `op` ("release end") for
        one domain, as hookwrap.sh measured them around the hook."""
        mark = f"hookwrap: {name}: {op}: returned after "
        return [int(l[len(mark):].split()[0]) for l in self.log(name, since)
                if l.startswith(mark)]

    def vm_store(self, uuid, state_dir=None):
        return os.path.join(state_dir or self.state_dir, uuid)

    def snapshots(self, uuid, state_dir=None):
        d = self.vm_store(uuid, state_dir)
        if not os.path.isdir(d):
            return []
        ids = [n for n in os.listdir(d) if n[0].isdigit()]
        # ...Z < ...Z-2 < ...Z-10: the hook's own order
        return sorted(ids, key=lambda i: (i.split("-")[0], int(i.split("-")[1]) if "-" in i else 1))

    def snapshot_dir(self, uuid, sid, state_dir=None):
        return os.path.join(self.vm_store(uuid, state_dir), sid)

    def meta(self, uuid, sid):
        with open(os.path.join(self.snapshot_dir(uuid, sid), "snapshot.json")) as f:
            return json.load(f)

    def state(self, *args, env=None):
        """Runs `stillpoint state ...` with the bed's configuration."""
        return run([self.bins.stillpoint, "state", *args], env={**self.env, **(env or {})})


class StoreLock:
    """Holds a VM's snapshot store lock, as a concurrent restore would."""

    def __init__(self, store):
        os.makedirs(store, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(store, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def swtpm_log_size(name):
    p = SWTPM_LOG.format(name=name)
    return os.path.getsize(p) if os.path.exists(p) else 0


def manufactured_since(name, offset):
    """Whether libvirt's swtpm_setup made a new TPM after offset in the log."""
    p = SWTPM_LOG.format(name=name)
    if not os.path.exists(p):
        return False
    with open(p, errors="replace") as f:
        f.seek(offset)
        return MANUFACTURE in f.read()


def flip_byte(path, offset):
    """Changes one byte of a file in place (owner and mode stay)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
