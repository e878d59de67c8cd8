"""Reading backup points back in tests: the expected content of a disk kept
as a model of the writes made to it, qemu-img compare/check, SHA-256."""
import hashlib
import json
import os
import subprocess


class DiskModel:
    """What the guest should see on a disk: the writes the test made, applied
    to a zeroed image. Written out as raw to compare with qemu-img."""

    def __init__(self, size):
        self.data = bytearray(size)

    def write(self, pattern, offset, length):
        self.data[offset:offset + length] = bytes([pattern]) * length

    def zero(self, offset, length):
        self.data[offset:offset + length] = bytes(length)

    def copy(self):
        m = DiskModel(0)
        m.data = bytearray(self.data)
        return m

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)
        return path


def apply(vm, model, target, op, pattern, offset, length):
    """Does op on the VM's disk and on its model alike."""
    if op == "write":
        vm.write(target, pattern, offset, length)
        model.write(pattern, offset, length)
    elif op == "zero":
        vm.zero(target, offset, length)
        model.zero(offset, length)
    else:
        raise ValueError(op)


def compare(expected_raw, image):
    """qemu-img compare: 0 identical, 1 different."""
    cp = subprocess.run(["qemu-img", "compare", "-f", "raw", expected_raw, image],
                        capture_output=True, text=True)
    return cp.returncode, cp.stdout + cp.stderr


def check(image):
    cp = subprocess.run(["qemu-img", "check", image], capture_output=True, text=True)
    return cp.returncode, cp.stdout + cp.stderr


def image_info(image):
    cp = subprocess.run(["qemu-img", "info", "--output=json", image], check=True,
                        capture_output=True, text=True)
    return json.loads(cp.stdout)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(point):
    with open(os.path.join(point, "manifest.json")) as f:
        return json.load(f)


def points(domain_dir):
    """(complete ids, partial ids), oldest first. A killed run's <id>.lock
    (the lock of the point it was writing) is neither."""
    names = sorted(n for n in os.listdir(domain_dir) if not n.endswith(".lock")) \
        if os.path.isdir(domain_dir) else []
    return ([n for n in names if not n.endswith(".partial")],
            [n[:-len(".partial")] for n in names if n.endswith(".partial")])


def sha256sum_c(point):
    """sha256sum -c of the point's SHA256SUMS, run in the point."""
    return subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=point,
                          capture_output=True, text=True)


def compare_images(a, b):
    """qemu-img compare of two images of any format (backing chains followed)."""
    cp = subprocess.run(["qemu-img", "compare", a, b], capture_output=True, text=True)
    return cp.returncode, cp.stdout + cp.stderr
