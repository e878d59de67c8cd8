"""`stillpoint backup` into a Ceph pool, target = rbd:POOL/NAMESPACE
(docs/design.md, "Points in Ceph"), against the test cluster (sp_ceph.py)
and a real VM: full and incremental points whose RBD snapshots equal the
VM's disks at their time (qemu-img compare through QEMU's rbd driver, an
independent reader), the rest of the point as RADOS objects committed last,
a failed run that leaves nothing visible and whose leftovers the next run
removes, and retention that drops whole points without touching the others.
"""
import hashlib
import os
import time
import json
import subprocess
import uuid as uuidlib

import pytest

import sp_ceph
import sp_points as spp
import sp_vm
from conftest import Bins, run

MiB = 1 << 20
TIMEOUT = 600  # a hard bound on every stillpoint run (the cluster may hang)


@pytest.fixture(scope="module")
def vm(conn, confdir):
    v = sp_vm.TestVM(conn, tag="rbd")
    try:
        v.start()
        v.wait_settled()
        yield v
    finally:
        v.remove()


class Pool:
    """A RADOS/RBD namespace of its own in the test cluster's pool, emptied
    and removed after the test."""

    def __init__(self, ceph):
        self.ceph = ceph
        self.ns = "t" + uuidlib.uuid4().hex[:10]
        ceph.rbd("namespace", "create", f"{ceph.pool}/{self.ns}")
        self.target = f"rbd:{ceph.pool}/{self.ns}"

    def sets(self):
        c = self.ceph
        return ["--set", f"ceph_conf={c.conf}", "--set", f"ceph_user={c.user}",
                "--set", f"ceph_keyring={c.keyring}", "--set", "ceph_timeout_s=30",
                # a loaded 2-core machine: never fail on the pause bound
                "--set", "pause_max_ms=60000"]

    def rados(self, *args, check=True):
        return self.ceph.rados("--namespace", self.ns, *args, check=check)

    def images(self):
        out = self.ceph.rbd("ls", "--format", "json", f"{self.ceph.pool}/{self.ns}").stdout
        return sorted(json.loads(out or "[]"))

    def snapshots(self, image):
        out = self.ceph.rbd("snap", "ls", "--format", "json",
                            f"{self.ceph.pool}/{self.ns}/{image}").stdout
        return [s["name"] for s in json.loads(out)]

    def omap(self, obj):
        out = self.rados("listomapkeys", obj, check=False).stdout
        return sorted(out.split())

    def objects(self):
        return sorted(self.rados("ls").stdout.split())

    def get(self, obj):
        return subprocess.run(["rados", *self.ceph.client_args(), "-p", self.ceph.pool,
                               "--namespace", self.ns, "get", obj, "-"], capture_output=True,
                              check=True, timeout=sp_ceph.CLIENT_TIMEOUT).stdout

    def qemu(self, image, snap):
        return self.ceph.qemu_rbd(f"{self.ns}/{image}", snap)

    def remove(self):
        for image in self.images():
            self.ceph.rbd("snap", "purge", f"{self.ceph.pool}/{self.ns}/{image}", check=False)
            self.ceph.rbd("rm", f"{self.ceph.pool}/{self.ns}/{image}", check=False)
        for obj in self.objects():
            self.rados("rm", obj, check=False)
        self.ceph.rbd("namespace", "remove", f"{self.ceph.pool}/{self.ns}", check=False)


@pytest.fixture
def pool(ceph):
    p = Pool(ceph)
    try:
        yield p
    finally:
        p.remove()


def backup(bins, vm, pool, *args, level=None):
    argv = [bins.stillpoint, "backup", vm.name, "--target", pool.target, "--json",
            *pool.sets(), *args]
    if level:
        argv += ["--level", level]
    return run(argv, timeout=TIMEOUT)


def list_points(bins, vm, pool, domain=None):
    r = run([bins.stillpoint, "list", domain or vm.name, "--target", pool.target, "--json",
             *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 0, r
    return r.json()


def models_now(vm, tmp_path):
    """Each disk's model starting from what it holds now (the VM is shared
    by the module)."""
    models = {}
    for t in vm.disks:
        raw = tmp_path / f"{t}.start"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", vm.disks[t], str(raw)],
                       check=True)
        models[t] = spp.DiskModel(vm.sizes[t])
        models[t].data = bytearray(open(raw, "rb").read())
    return models


def assert_point_equals(pool, j, models, tmp_path):
    """Each disk's snapshot reads as the model at the point's time."""
    for d in j["disks"]:
        t = d["target"]
        assert d["rbd_snapshot"] == j["id"]
        expected = models[t].save(tmp_path / f"{t}.expected")
        cp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(expected),
                             pool.qemu(d["rbd_image"], d["rbd_snapshot"])],
                            capture_output=True, text=True, timeout=sp_ceph.CLIENT_TIMEOUT)
        assert cp.returncode == 0, f"point {j['id']} disk {t}: {cp.stdout}{cp.stderr}"


def assert_committed(pool, vm, j):
    """point.ID is set, no intent is left, the manifest object is the one
    committed and SHA256SUMS lists every object of the point."""
    keys = pool.omap(f"stillpoint.vm.{vm.uuid}")
    assert f"point.{j['id']}" in keys
    assert not [k for k in keys if k.startswith("pending.")], keys
    rec = pool.rados("getomapval", f"stillpoint.vm.{vm.uuid}", f"point.{j['id']}",
                     "/dev/stdout").stdout
    prefix = f"stillpoint.point.{vm.uuid}.{j['id']}/"
    manifest = pool.get(prefix + "manifest.json")
    assert f"sha256 {hashlib.sha256(manifest).hexdigest()} size {len(manifest)}" in rec
    assert json.loads(manifest)["format"] == 2
    sums = pool.get(prefix + "SHA256SUMS").decode()
    listed = {line.split("  ", 1)[1] for line in sums.splitlines()}
    objects = {o[len(prefix):] for o in pool.objects() if o.startswith(prefix)}
    assert listed == objects - {"SHA256SUMS"}
    assert {"manifest.json", "domain.xml", "checkpoint.xml"} <= listed
    assert any(p.startswith("nvram/") for p in listed) and any(p.startswith("tpm/") for p in
                                                               listed)
    for line in sums.splitlines():
        h, p = line.split("  ", 1)
        assert hashlib.sha256(pool.get(prefix + p)).hexdigest() == h, p


def test_full_inc_failed_inc_prune(bins, vm, pool, tmp_path):
    """Full, inc, an inc whose copier fails after writing (nothing visible,
    checkpoint gone, leftovers named by intents), an inc that cleans them up,
    and keep = 2: each surviving snapshot still equals its disk."""
    models = models_now(vm, tmp_path)
    steps = [
        [("vda", "write", 0x11, 0, 4 * MiB), ("vdb", "write", 0x22, 1 * MiB, 512 * 1024)],
        [("vda", "write", 0x33, 2 * MiB, 64 * 1024), ("vdb", "zero", 0, 1 * MiB, 64 * 1024),
         ("vdc", "write", 0x44, 0, 1 * MiB)],
    ]
    points, states = [], []
    for i, writes in enumerate(steps):
        for t, op, pat, off, ln in writes:
            spp.apply(vm, models[t], t, op, pat, off, ln)
        r = backup(bins, vm, pool)
        assert r.rc == 0, r
        j = r.json()
        assert j["level"] == ("full" if i == 0 else "inc")
        assert j["path"] == f"{pool.target}/{vm.uuid}@{j['id']}"
        disks = {d["target"]: d for d in j["disks"]}
        assert disks["vda"]["rbd_image"] == f"stillpoint.{vm.uuid}.vda.{points[0] if i else j['id']}"
        assert disks["vdc"]["level"] == "full"  # raw: always full, an image per point
        if i:
            assert disks["vda"]["level"] == "inc" and j["parent"] == points[-1]
            # Only the dirty extents were written.
            assert disks["vda"]["bytes_written"] <= 1 * MiB
        assert_point_equals(pool, j, models, tmp_path)
        assert_committed(pool, vm, j)
        assert not os.path.exists(f"/run/stillpoint/rbd-staging/{vm.uuid}")  # staging removed
        points.append(j["id"])
        states.append({t: m.copy() for t, m in models.items()})
        assert vm.is_running()
    vda = f"stillpoint.{vm.uuid}.vda.{points[0]}"
    assert pool.snapshots(vda) == points

    # A run that fails after its copier wrote the snapshot: not a point.
    spp.apply(vm, models["vda"], "vda", "write", 0x55, 8 * MiB, 1 * MiB)
    before = sp_vm.checkpoints(vm.dom)
    r = backup(bins, vm, pool, "--set", f'copier="{Bins.copy}"; exit 1')
    assert r.rc == 1, r
    assert "not committed" in r.err, r
    assert not os.path.exists(f"/run/stillpoint/rbd-staging/{vm.uuid}")
    assert sp_vm.checkpoints(vm.dom) == before
    keys = pool.omap(f"stillpoint.vm.{vm.uuid}")
    assert [k for k in keys if k.startswith("point.")] == [f"point.{p}" for p in points]
    failed = {k.split(".")[1] for k in keys if k.startswith("pending.")}
    assert len(failed) == 1, keys
    failed = failed.pop()
    assert pool.snapshots(vda)[-1] == failed  # left, named by an intent
    # list: the committed points, and the failed run as incomplete.
    listed = list_points(bins, vm, pool)
    assert [(p["id"], p["complete"]) for p in listed] == \
        [(p, True) for p in points] + [(failed, False)]
    assert listed[0]["path"] == f"{pool.target}/{vm.uuid}@{points[0]}"
    assert listed[1]["manifest"]["parent"] == points[0]
    r = run([bins.stillpoint, "list", vm.name, "--target", pool.target, *pool.sets()],
            timeout=TIMEOUT)
    assert r.rc == 0 and "incomplete (not committed)" in r.out, r

    # The next run removes the leftovers and builds on the last good point;
    # keep = 2 then drops the full point (no merging: snapshots are whole disks).
    spp.apply(vm, models["vdb"], "vdb", "write", 0x66, 3 * MiB, 256 * 1024)
    r = backup(bins, vm, pool, "--set", "keep=2")
    assert r.rc == 0, r
    assert "leftover" in r.err, r
    j = r.json()
    assert j["level"] == "inc" and j["parent"] == points[-1]
    assert_point_equals(pool, j, models, tmp_path)
    assert_committed(pool, vm, j)
    points.append(j["id"])
    states.append({t: m.copy() for t, m in models.items()})
    keys = pool.omap(f"stillpoint.vm.{vm.uuid}")
    assert keys == sorted(f"point.{p}" for p in points[1:]), keys
    assert pool.snapshots(vda) == points[1:]
    assert not [o for o in pool.objects() if f".{points[0]}/" in o]
    assert f"stillpoint.{vm.uuid}.vdc.{points[0]}" not in pool.images()
    for pid, st in zip(points[1:], states[1:]):
        manifest = json.loads(pool.get(f"stillpoint.point.{vm.uuid}.{pid}/manifest.json"))
        assert_point_equals(pool, manifest, st, tmp_path)
    assert points[0] not in sp_vm.checkpoints(vm.dom)
    # Found by the domain's UUID as well as by its name.
    assert [p["id"] for p in list_points(bins, vm, pool, vm.uuid)] == points[1:]

    # prune as a command: a dry run changes nothing, then keep = 1.
    prune = [bins.stillpoint, "prune", vm.name, "--target", pool.target, "--json",
             *pool.sets(), "--set", "keep=1"]
    r = run([*prune, "--dry-run"], timeout=TIMEOUT)
    assert r.rc == 0, r
    assert [a["point"] for a in r.json()[0]["actions"]] == [points[1]]
    assert pool.snapshots(vda) == points[1:]
    r = run(prune, timeout=TIMEOUT)
    assert r.rc == 0, r
    assert [a["point"] for a in r.json()[0]["actions"]] == [points[1]]
    assert [p["id"] for p in list_points(bins, vm, pool)] == points[2:]
    assert pool.snapshots(vda) == points[2:]
    manifest = json.loads(pool.get(f"stillpoint.point.{vm.uuid}.{points[2]}/manifest.json"))
    assert_point_equals(pool, manifest, states[2], tmp_path)


def test_second_run_gets_the_holder(bins, vm, pool):
    """While one run holds the VM's lock in the pool, another (another host,
    as far as the pool knows) fails at once naming the holder."""
    locker = subprocess.Popen(
        ["rados", *pool.ceph.client_args(), "-p", pool.ceph.pool, "--namespace", pool.ns,
         "lock", "get", f"stillpoint.vm.{vm.uuid}", "stillpoint", "--lock-cookie",
         "otherhost pid 4242 backup since 2026-12-07T00:00:00Z", "--lock-duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert locker.wait(timeout=sp_ceph.CLIENT_TIMEOUT) == 0, locker.stderr.read()
    before = sp_vm.checkpoints(vm.dom)
    r = backup(bins, vm, pool)
    assert r.rc == 1, r
    assert "otherhost pid 4242" in r.err, r
    assert sp_vm.checkpoints(vm.dom) == before
    assert vm.is_running()


def test_two_coordinators_one_pool(bins, conn, vm, pool):
    """Two backups of two VMs into one pool at once both commit, each under
    its own VM's lock; a third run on a VM being backed up fails at once
    naming the holder (on one host the local lock answers first)."""
    other = sp_vm.TestVM(conn, tag="rbd2")
    try:
        other.start()
        other.wait_settled()
        slow = ["--set", f'copier=sleep 15; exec "{Bins.copy}"']
        procs = [subprocess.Popen([bins.stillpoint, "backup", v.name, "--target", pool.target,
                                   "--json", *pool.sets(), *slow], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for v in (vm, other)]
        # Wait (no timing assumption) until vm's run is copying: its intents exist.
        deadline = time.monotonic() + TIMEOUT
        while not any(k.startswith("pending.") for k in pool.omap(f"stillpoint.vm.{vm.uuid}")):
            assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].stderr.read()
            time.sleep(0.5)
        third = backup(bins, vm, pool)
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
        assert third.rc == 1 and "busy" in third.err, third
        for v, (out, _) in zip((vm, other), outs):
            j = json.loads(out)
            assert [p["id"] for p in list_points(bins, v, pool)] == [j["id"]]
            assert pool.omap(f"stillpoint.vm.{v.uuid}") == [f"point.{j['id']}"]
    finally:
        other.remove()
