"""The RADOS point store (ceph/rados_points.c; docs/design.md, "Points in
Ceph") against the test cluster, driven by tests/tools/sp-rados-store: a
point's files written, committed, listed and read back; a point without its
commit invisible; what a failed run left removed by the next; the VM lock
naming its holder and fencing a holder whose lock was taken over."""
import hashlib
import json
import os
import subprocess
import time
import uuid as uuidlib

import pytest

import sp_ceph
from conftest import BUILD

TOOL = os.path.join(BUILD, "tests", "tools", "sp-rados-store")
P1, P2 = "20261126T063000Z-full", "20261126T070000Z-inc"


class Store:
    """Scripts for sp-rados-store on one VM's store in a namespace of its own."""

    def __init__(self, ceph, ns):
        self.ceph, self.ns, self.uuid = ceph, ns, str(uuidlib.uuid4())

    def argv(self):
        c = self.ceph
        return [TOOL, "--conf", c.conf, "--user", c.user, "--keyring", c.keyring, "--pool",
                c.pool, "--ns", self.ns, "--uuid", self.uuid, "--timeout", "15"]

    def run(self, *lines, check=True):
        cp = subprocess.run(self.argv(), input="\n".join(lines) + "\n", capture_output=True,
                            text=True, timeout=sp_ceph.CLIENT_TIMEOUT)
        assert not check or cp.returncode == 0, cp.stdout + cp.stderr
        return cp

    def start(self, *lines):
        """A script left running (its stdin stays open until finish())."""
        p = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdin.write("\n".join(lines) + "\n")
        p.stdin.flush()
        return p

    def objects(self):
        """Every object of the namespace (a test may list: its pool is small)."""
        out = self.ceph.rados("-N", self.ns, "ls").stdout
        return sorted(out.split())


def wait_line(p, prefix, timeout=sp_ceph.CLIENT_TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = p.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and p.poll() is not None:
            break
    raise AssertionError(f"no line {prefix!r} from the tool: {p.stderr.read()}")


def point_files(tmp_path, tag):
    """A point's files as the coordinator writes them; manifest last."""
    d = tmp_path / tag
    (d / "nvram").mkdir(parents=True)
    (d / "tpm" / "tpm2").mkdir(parents=True)
    files = {
        "domain.xml": b"<domain><name>vm</name></domain>\n",
        "checkpoint.xml": b"<domaincheckpoint/>\n",
        "nvram/vm_VARS.fd": os.urandom(540672),
        "tpm/tpm2/tpm2-00.permall": os.urandom(6122),
    }
    sums = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in files.items())
    files["SHA256SUMS"] = sums.encode()
    files["manifest.json"] = json.dumps({"format": 2, "id": tag}).encode()
    for k, v in files.items():
        (d / k).write_bytes(v)
    return d, files


def puts(point_id, d, files):
    return [f"put {point_id} {k} {d / k}" for k in files]


def test_commit_list_read_and_remove(ceph, tmp_path):
    """Written files are invisible until the commit, then listed with the
    manifest's hash and size and read back byte for byte; a second point left
    uncommitted by a run that died stays invisible and is cleaned up by the
    next run; removing a point leaves nothing of it."""
    s = Store(ceph, "t-commit")
    d1, f1 = point_files(tmp_path, P1)
    out = s.run("lock host-a pid 101 since 2026-11-26T06:30:00Z", "register vm-one",
                *puts(P1, d1, f1), "list").stdout
    # Every file written, none visible as a point: only the intent shows.
    assert f"pending {P1}" in out and "point " not in out, out
    out = s.run("lock host-a pid 102", f"commit {P1}", "list", f"manifest {P1}").stdout
    digest = hashlib.sha256(f1["manifest.json"]).hexdigest()
    assert f"point {P1} {digest} {len(f1['manifest.json'])}" in out, out
    assert "pending" not in out, out
    assert f1["manifest.json"].decode() in out
    for path, data in f1.items():
        got = subprocess.run(s.argv(), input=f"get {P1} {path}\n".encode(), capture_output=True,
                             timeout=sp_ceph.CLIENT_TIMEOUT).stdout
        assert got.startswith(data) and got[len(data):] == b"ok get\n", path
    vms = ceph.rados("-N", "t-commit", "listomapvals", "stillpoint.vms").stdout
    assert s.uuid in vms and "vm-one" in vms

    # A run that dies after writing its files: nothing visible, the next
    # run's cleanup removes every object it wrote.
    d2, f2 = point_files(tmp_path, P2)
    s.run("lock host-b pid 7", *puts(P2, d2, f2))
    out = s.run("list").stdout
    assert f"point {P1}" in out and f"point {P2}" not in out and f"pending {P2}" in out
    assert any(o.startswith(f"stillpoint.point.{s.uuid}.{P2}/") for o in s.objects())
    out = s.run("lock host-a pid 103", "cleanup", "list").stdout
    assert f"removed {len(f2)}" in out and "pending" not in out, out
    assert not any(f".{P2}/" in o for o in s.objects())
    # And a committed point removed: uncommit (one operation), then cleanup.
    out = s.run("lock host-a pid 104", f"uncommit {P1} " + " ".join(f1), "list",
                "cleanup", "list").stdout
    assert f"point {P1}" not in out and f"removed {len(f1)}" in out, out
    assert s.objects() == sorted([f"stillpoint.vm.{s.uuid}", "stillpoint.vms"])


def test_changed_manifest_is_refused(ceph, tmp_path):
    """A manifest object replaced after the commit no longer matches its
    commit record: reading the point fails and says so."""
    s = Store(ceph, "t-tamper")
    d, f = point_files(tmp_path, P1)
    s.run("lock h", *puts(P1, d, f), f"commit {P1}")
    oid = f"stillpoint.point.{s.uuid}.{P1}/manifest.json"
    ceph.rados("-N", "t-tamper", "put", oid, "-", input='{"format": 2, "id": "evil"}')
    cp = s.run(f"manifest {P1}", check=False)
    assert cp.returncode == 1 and "is not the one committed" in cp.stdout, cp.stdout
    # Without the lock nothing commits, uncommits or cleans up.
    for line in (f"commit {P1}", f"uncommit {P1} domain.xml", "cleanup"):
        cp = s.run(line, check=False)
        assert cp.returncode == 1 and "without" in cp.stdout and "lock" in cp.stdout, cp.stdout


def test_lock_names_holder_and_fences(ceph, tmp_path):
    """A second holder is refused with the first one's name; a holder whose
    lock was taken over (broken here; an expired lease in life) cannot commit,
    and its point stays invisible."""
    s = Store(ceph, "t-lock")
    d, f = point_files(tmp_path, P1)
    a = s.start("lock host-a pid 4242 since 2026-11-26T06:30:00Z", *puts(P1, d, f))
    try:
        wait_line(a, "ok put")
        cp = s.run("lock host-b pid 1", check=False)
        assert cp.returncode == 1 and "busy" in cp.stdout and \
            "host-a pid 4242 since 2026-11-26T06:30:00Z" in cp.stdout, cp.stdout
        # The lock is taken over: broken by hand, then taken by host-b.
        lockers = json.loads(ceph.rados("-N", "t-lock", "lock", "info",
                                        f"stillpoint.vm.{s.uuid}", "stillpoint").stdout)
        locker = lockers["lockers"][0]
        ceph.rados("-N", "t-lock", "lock", "break", f"stillpoint.vm.{s.uuid}", "stillpoint",
                   locker["name"], "--lock-cookie", locker["cookie"])
        s.run("lock host-b pid 2", "sleep 0")
        out, err = a.communicate(input=f"commit {P1}\n", timeout=sp_ceph.CLIENT_TIMEOUT)
        assert a.returncode == 1 and "taken over" in out, out + err
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    out = s.run("list").stdout
    assert "point " not in out and f"pending {P1}" in out, out


def test_cleanup_removes_snapshots_and_images(ceph):
    """Intents for an RBD image and snapshot (what a failed copy may leave)
    are removed by cleanup, snapshots before their image; an image that
    still has another point's snapshot stays."""
    s = Store(ceph, "t-rbd")
    ceph.rbd("namespace", "create", f"{ceph.pool}/t-rbd")
    img = f"stillpoint.{s.uuid}.vda.{P1}"
    keep = f"stillpoint.{s.uuid}.vdb.{P1}"
    spec = f"{ceph.pool}/t-rbd/{img}"
    ceph.rbd("create", "--size", "8M", spec)
    ceph.rbd("snap", "create", f"{spec}@{P1}")
    ceph.rbd("create", "--size", "8M", f"{ceph.pool}/t-rbd/{keep}")
    ceph.rbd("snap", "create", f"{ceph.pool}/t-rbd/{keep}@{P1}")
    ceph.rbd("snap", "create", f"{ceph.pool}/t-rbd/{keep}@{P2}")
    try:
        out = s.run("lock h", f"intend {P1} @{img}", f"intend {P1} @{img}@{P1}",
                    f"intend {P2} @{keep}", f"intend {P2} @{keep}@{P2}", "list",
                    "cleanup", "list").stdout
        assert out.count("pending") == 2 and "removed 4" in out, out
        images = ceph.rbd("ls", f"{ceph.pool}/t-rbd").stdout.split()
        assert img not in images and keep in images
        snaps = json.loads(ceph.rbd("snap", "ls", "--format", "json",
                                    f"{ceph.pool}/t-rbd/{keep}").stdout)
        assert [x["name"] for x in snaps] == [P1]
        # Bad items are refused before anything is recorded.
        for bad in ("../x", "/etc/passwd", "@a/b", f"@{img}@not-an-id"):
            cp = s.run("lock h", f"intend {P1} {bad}", check=False)
            assert cp.returncode == 1 and "bad item" in cp.stdout, (bad, cp.stdout)
    finally:
        ceph.rbd("snap", "purge", f"{ceph.pool}/t-rbd/{keep}", check=False)
        ceph.rbd("rm", f"{ceph.pool}/t-rbd/{keep}", check=False)
        ceph.rbd("snap", "purge", spec, check=False)
        ceph.rbd("rm", spec, check=False)
