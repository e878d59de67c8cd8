"""NBD sources and qcow2 checks for the copier's end-to-end tests and its
benchmark: a local qcow2 with persistent dirty bitmaps served by a real
qemu-nbd (source A), a real libvirt pull-mode backup job of a running VM
(source B), and the qemu-img / nbdinfo readings the tests assert on.
Everything here runs real programs; nothing is mocked."""
import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time

import sp_vm

MiB = 1 << 20
CLUSTER = 64 * 1024


def sh(*argv, **kw):
    """Runs argv (never through a shell); raises with stderr on failure."""
    cp = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if cp.returncode != 0:
        raise RuntimeError(f"{argv}: rc={cp.returncode}\n{cp.stdout}{cp.stderr}")
    return cp.stdout


def wait_for_socket(path, proc=None, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"NBD server exited with {proc.returncode}")
        if time.time() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


# -- source A: a local image and qemu-nbd ---------------------------------------

class LocalSource:
    """A qcow2 image whose writes are tracked by persistent bitmaps, as a VM
    disk's are by libvirt checkpoints. Written with qemu-io while no export
    runs; exported read-only by qemu-nbd, with a bitmap as the context
    qemu:dirty-bitmap:<name>."""

    def __init__(self, workdir, size):
        self.workdir = workdir
        self.size = size
        self.image = os.path.join(workdir, "source.qcow2")
        self.sock = os.path.join(workdir, "source.sock")
        sh("qemu-img", "create", "-q", "-f", "qcow2", self.image, str(size))

    def io(self, *commands):
        """qemu-io commands on the image; discard really unmaps."""
        argv = ["qemu-io", "-d", "unmap", "-f", "qcow2"]
        for c in commands:
            argv += ["-c", c]
        out = sh(*argv, self.image)
        if "failed" in out or "error" in out.lower():
            raise RuntimeError(out)

    def add_bitmap(self, name):
        sh("qemu-img", "bitmap", "--add", "--enable", self.image, name)

    def remove_bitmap(self, name):
        sh("qemu-img", "bitmap", "--remove", self.image, name)

    @contextlib.contextmanager
    def export(self, bitmap=None, extra=()):
        """Serves the image read-only; yields the URI. Four connections are
        allowed so the copier's multi-conn path is used."""
        argv = ["qemu-nbd", "-r", "-t", "-e", "4", "-f", "qcow2", "-k", self.sock, *extra]
        if bitmap:
            argv += ["-B", bitmap]
        proc = subprocess.Popen(argv + [self.image], stderr=subprocess.PIPE)
        try:
            wait_for_socket(self.sock, proc)
            yield f"nbd+unix:///?socket={self.sock}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.sock)


def random_file(path, size, seed):
    """Incompressible bytes, reproducible by seed."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.write(rnd.randbytes(size))
    os.chmod(path, 0o644)
    return path


def text_file(path, size, seed):
    """Compressible, non-zero bytes (log-like lines)."""
    rnd = random.Random(seed)
    words = [b"stillpoint", b"backup", b"qcow2", b"cluster", b"overlay", b"bitmap",
             b"checkpoint", b"nvram", b"tpm", b"guest", b"freeze", b"thaw"]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rnd.choice(words) for _ in range(12)) + b"\n"
    with open(path, "wb") as f:
        f.write(out[:size])
    os.chmod(path, 0o644)
    return path


# -- source B: a libvirt pull-mode backup job ---------------------------------

class PullJob:
    """`virsh backup-begin` in pull mode with a new checkpoint, for the
    given qcow2 disks; the exports are named by disk target."""

    def __init__(self, vm, disks, checkpoint, incremental=None, checkpoint_disks=None):
        """disks: targets exported; checkpoint_disks: targets given a bitmap
        (default: the same; a raw disk can have none)."""
        self.vm = vm
        self.disks = list(disks)
        bitmapped = list(checkpoint_disks if checkpoint_disks is not None else disks)
        self.dir = tempfile.mkdtemp(prefix=f"{vm.name}-job-", dir="/var/tmp")
        qemu = pwd.getpwnam("libvirt-qemu")
        os.chown(self.dir, qemu.pw_uid, qemu.pw_gid)
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "nbd.sock")
        inc = f"<incremental>{incremental}</incremental>" if incremental else ""
        backup_disks = "".join(
            f"<disk name='{t}' backup='yes' type='file'>"
            f"<scratch file='{self.dir}/{t}.scratch'/></disk>" if t in self.disks
            else f"<disk name='{t}' backup='no'/>" for t in vm.disks)
        cp_disks = "".join(
            f"<disk name='{t}' checkpoint='{'bitmap' if t in bitmapped else 'no'}'/>"
            for t in vm.disks)
        backup_xml = (f"<domainbackup mode='pull'>{inc}<server transport='unix' "
                      f"socket='{self.sock}'/><disks>{backup_disks}</disks></domainbackup>")
        cp_xml = (f"<domaincheckpoint><name>{checkpoint}</name><disks>{cp_disks}</disks>"
                  f"</domaincheckpoint>")
        bx, cx = os.path.join(self.dir, "b.xml"), os.path.join(self.dir, "c.xml")
        with open(bx, "w") as f:
            f.write(backup_xml)
        with open(cx, "w") as f:
            f.write(cp_xml)
        try:
            sp_vm.virsh("backup-begin", vm.name, bx, cx)
            wait_for_socket(self.sock)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def uri(self, target):
        return f"nbd+unix:///{target}?socket={self.sock}"

    def end(self):
        sp_vm.virsh("domjobabort", self.vm.name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()


# -- what the tests read back ---------------------------------------------------

def compare(a, b, fmt_b=None):
    """qemu-img compare of contents: a (qcow2, with its backing chain)
    against b. Returns (rc, text); 0 means identical."""
    argv = ["qemu-img", "compare", "-f", "qcow2"]
    if fmt_b:
        argv += ["-F", fmt_b]
    cp = subprocess.run(argv + [a, b], capture_output=True, text=True)
    return cp.returncode, cp.stdout + cp.stderr


def check(image):
    cp = subprocess.run(["qemu-img", "check", "--output=json", image], capture_output=True,
                        text=True)
    return cp.returncode, json.loads(cp.stdout) if cp.stdout.strip() else cp.stderr


def info(image):
    return json.loads(sh("qemu-img", "info", "--output=json", image))


def map_top(image):
    """qemu-img map entries of the image itself (depth 0), without its backing."""
    entries = json.loads(sh("qemu-img", "map", "--output=json", image))
    return [e for e in entries if e["depth"] == 0]


def top_allocated(image):
    """Bytes the overlay itself describes (data or zero clusters)."""
    return sum(e["length"] for e in map_top(image) if e["data"] or e["zero"])


def nbd_map(uri, context):
    """nbdinfo --map: [(offset, length, flags)]."""
    out = sh("nbdinfo", "--json", f"--map={context}", uri)
    return [(e["offset"], e["length"], e["type"]) for e in json.loads(out)]


def dirty(uri, context):
    """The dirty extents of a bitmap context: [(offset, length)]."""
    return [(o, n) for o, n, t in nbd_map(uri, context) if t & 1]


def copier_env(uri, disk, output, level="full", bitmap="", parent="", size=None):
    """The environment the coordinator gives a copier (docs/design.md, "The
    copier contract")."""
    point = os.path.dirname(os.path.dirname(output))
    return {
        "STILLPOINT_NBD_URI": uri,
        "STILLPOINT_DISK": disk,
        "STILLPOINT_DISK_SIZE": str(size) if size else "",
        "STILLPOINT_LEVEL": level,
        "STILLPOINT_BITMAP": bitmap,
        "STILLPOINT_OUTPUT": output,
        "STILLPOINT_PARENT_OUTPUT": parent,
        "STILLPOINT_POINT_DIR": point,
        "STILLPOINT_DOMAIN": "sptest-copy",
        "STILLPOINT_DOMAIN_UUID": "00000000-0000-4000-8000-000000000000",
        "STILLPOINT_CHECKPOINT": os.path.basename(point),
    }


DONE_RE = (r"^stillpoint-copy: (?P<disk>[^:]+): done: read (?P<read>\d+) written "
           r"(?P<written>\d+) zeroed (?P<zeroed>\d+) bytes in (?P<secs>\d+\.\d\d) s "
           r"\((?P<rate>\d+\.\d) MiB/s\)(?:, image sha256 (?P<sha256>[0-9a-f]{64}))?$")


def kill_quietly(proc):
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
