"""`stillpoint inspect` and `stillpoint mount` of points in Ceph (issue 21),
against the test cluster (sp_ceph.py) and one firmware-only VM (EFI, swtpm)
whose vda holds an MBR of two ext4 partitions written from the host.

The same VM is backed up into a RADOS namespace of its own and into a
directory, one right after the other: inspect of the Ceph point says what
inspect of the directory point says (only the paths differ, and the TPM's
clock, which runs), and --against one from the other finds no difference.
A changed NVRAM object is reported unreadable (exit 1), never parsed.
mount of the Ceph point serves the disk's RBD snapshot read-only (qemu-nbd
pinned to raw) and shows the partitions' files; umount leaves nothing.
"""
import json
import os
import subprocess
import time

import pytest

import sp_ceph
import sp_vm
from conftest import run
from test_backup_rbd import TIMEOUT, Pool
from test_mount import leftovers, mbr_disk, run_dir

# What inspect may differ in between two points a second apart: where the
# state came from, the point's own names, and the TPM's running clock.
VOLATILE = {"path", "file", "dir", "id", "created", "clock_ms", "reset_count", "restart_count"}


@pytest.fixture(scope="module")
def module_pool(ceph):
    p = Pool(ceph)
    try:
        yield p
    finally:
        p.remove()


@pytest.fixture(scope="module")
def points(bins, conn, confdir, module_pool, tmp_path_factory):
    """(VM, the Ceph point's name, the directory point's path)."""
    pool = module_pool
    work = tmp_path_factory.mktemp("rbd-read")
    vm = sp_vm.TestVM(conn, tag="rbdread")
    try:
        raw = work / "parts.raw"
        mbr_disk(raw, [{"one.txt": "partition one\n"}, {"two.txt": "partition two\n"}])
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                        vm.disks["vda"]], check=True)
        vm.start()
        vm.wait_settled()
        stillpoint = bins.stillpoint
        firmware_done(stillpoint, vm)
        r = run([stillpoint, "backup", vm.name, "--target", pool.target, "--level", "full",
                 "--json", *pool.sets()], timeout=TIMEOUT)
        assert r.rc == 0, r
        rbd_point = f"{pool.target}/{vm.uuid}@{r.json()['id']}"
        target = work / "points"
        r = run([stillpoint, "backup", vm.name, "--target", str(target), "--level", "full",
                 "--json", "--set", "pause_max_ms=60000"], timeout=TIMEOUT)
        assert r.rc == 0, r
        yield vm, rbd_point, r.json()["path"]
    finally:
        vm.remove()


def firmware_done(stillpoint, vm, timeout=180):
    """Waits until OVMF has written its boot variables and the VM's NVRAM
    and TPM state read the same twice, 3 s apart: the two points must be
    of one state."""
    last, end = None, time.monotonic() + timeout
    while time.monotonic() < end:
        r = run([stillpoint, "inspect", "--domain", vm.name, "--json"], timeout=TIMEOUT)
        # Exit 1: a state that did not read the same twice (being written).
        now = stable(r.json()["subject"]) if r.rc == 0 else None
        names = [v["name"] for v in ((now or {}).get("nvram") or {}).get("variables", [])]
        if now is not None and now == last and "BootOrder" in names:
            return
        last = now
        time.sleep(3)
    pytest.fail(f"the NVRAM and TPM state of {vm.name} did not settle in {timeout} s")


def stable(o):
    """o without what may differ between the two points (VOLATILE)."""
    if isinstance(o, dict):
        return {k: stable(v) for k, v in o.items() if k not in VOLATILE}
    if isinstance(o, list):
        return [stable(v) for v in o]
    return o


def test_inspect_rbd_point_says_what_the_directory_point_says(bins, module_pool, points):
    pool = module_pool
    vm, rbd_point, dir_point = points
    r = run([bins.stillpoint, "inspect", rbd_point, "--json", *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 0, r
    got = r.json()["subject"]
    r = run([bins.stillpoint, "inspect", dir_point, "--json"], timeout=TIMEOUT)
    assert r.rc == 0, r
    want = r.json()["subject"]
    # Something was read: the firmware's boot variables and a queried TPM.
    assert got["nvram"]["variables"] and got["tpm"]["queried"], got
    assert got["path"] == rbd_point and got["domain"] == vm.name
    prefix = f"stillpoint.point.{vm.uuid}.{got['id']}/"
    m = json.loads(pool.get(prefix + "manifest.json"))
    assert got["nvram"]["file"] == f"{rbd_point}/{m['nvram']['path']}"
    assert got["tpm"]["dir"] == f"{rbd_point}/{m['tpm']['path']}"
    assert stable(got) == stable(want)
    # Compared with each other, either way round: nothing differs.
    for a, b in ((rbd_point, dir_point), (dir_point, rbd_point)):
        r = run([bins.stillpoint, "inspect", a, "--against", b, *pool.sets()], timeout=TIMEOUT)
        assert r.rc == 0 and "\n0 differences\n" in r.out, r
    # The human form names the Ceph objects where it names files.
    r = run([bins.stillpoint, "inspect", rbd_point, *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 0, r
    assert f"NVRAM    {rbd_point}/{m['nvram']['path']}\n" in r.out, r


def test_inspect_refuses_a_changed_nvram_object(bins, module_pool, points, tmp_path):
    pool = module_pool
    vm, rbd_point, _ = points
    pid = rbd_point.rsplit("@", 1)[1]
    prefix = f"stillpoint.point.{vm.uuid}.{pid}/"
    m = json.loads(pool.get(prefix + "manifest.json"))
    obj = prefix + m["nvram"]["path"]
    original = pool.get(obj)
    changed = tmp_path / "nvram"
    changed.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    pool.rados("put", obj, str(changed))
    try:
        r = run([bins.stillpoint, "inspect", rbd_point, *pool.sets()], timeout=TIMEOUT)
        assert r.rc == 1, r
        assert "unreadable" in r.out and "SHA-256" in r.out, r
        # The TPM is still read and shown.
        assert "TPM      " in r.out and "unreadable" not in r.out.split("TPM      ")[1], r
    finally:
        (tmp_path / "orig").write_bytes(original)
        pool.rados("put", obj, str(tmp_path / "orig"))
    r = run([bins.stillpoint, "inspect", rbd_point, *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 0, r


def qemu_nbd_args(d):
    """The command line of the qemu-nbd serving the mount on d."""
    out = subprocess.run(["pgrep", "-af", f"qemu-nbd.*{run_dir(d)}"], capture_output=True,
                         text=True).stdout
    return out.split()


def test_mount_rbd_point(bins, module_pool, points, tmp_path):
    pool = module_pool
    vm, rbd_point, _ = points
    d = tmp_path / "m"
    d.mkdir()
    # Three disks: which one must be said.
    r = run([bins.stillpoint, "mount", rbd_point, str(d), *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 2 and "--disk" in r.err and "vda" in r.err, r
    r = run([bins.stillpoint, "mount", rbd_point, str(d), "--disk", "vda", "--json",
             *pool.sets()], timeout=TIMEOUT)
    assert r.rc == 0, r
    try:
        j = r.json()
        assert j["point"] == rbd_point and j["disk"] == "vda", j
        assert sorted(m["partition"] for m in j["mounts"]) == [1, 2], j
        assert (d / "1" / "one.txt").read_text() == "partition one\n"
        assert (d / "2" / "two.txt").read_text() == "partition two\n"
        with pytest.raises(OSError):
            (d / "1" / "new").write_text("x")
        # The snapshot through QEMU's rbd driver, its format named (never
        # probed from what the guest wrote), read-only.
        args = qemu_nbd_args(d)
        assert "--read-only" in args and "--format=raw" in args, args
        snap = [a for a in args if a.startswith("rbd:")]
        assert snap and f"@{rbd_point.rsplit('@', 1)[1]}:" in snap[0], args
        # umount tells where the disk came from.
        r = run([bins.stillpoint, "umount", str(d)], timeout=TIMEOUT)
        assert r.rc == 0 and rbd_point in r.out, r
    finally:
        if leftovers(d):
            run([bins.stillpoint, "umount", str(d)], timeout=TIMEOUT)
    assert leftovers(d) == [] and os.listdir(d) == []
    # An empty disk holds nothing to mount: refused, and nothing stays.
    r = run([bins.stillpoint, "mount", rbd_point, str(d), "--disk", "vdb", *pool.sets()],
            timeout=TIMEOUT)
    assert r.rc == 1 and "no file system" in r.err, r
    assert leftovers(d) == [] and os.listdir(d) == []
    # A point that is not there is refused before anything starts.
    missing = rbd_point.rsplit("@", 1)[0] + "@20000101T000000Z-full"
    r = run([bins.stillpoint, "mount", missing, str(d), "--disk", "vda", *pool.sets()],
            timeout=TIMEOUT)
    assert r.rc == 3 and "no such point" in r.err, r
    assert leftovers(d) == []


def check(bins, vm, pool, *extra):
    return run([bins.stillpoint, "check", vm.name, "--set", f"target={pool.target}",
                *pool.sets(), *extra], timeout=TIMEOUT)


def test_check_reaches_the_ceph_target(bins, module_pool, points, tmp_path):
    """check of a VM whose target is a Ceph pool connects as a backup would:
    reached and the VM's lock free; a lock held is named (a warning: a
    lease ends by itself); a wrong key or a missing pool is a refusal."""
    pool = module_pool
    vm = points[0]
    r = check(bins, vm, pool)
    assert r.rc == 0, r
    assert f"target   {pool.target}  Ceph pool reached, VM's lock free\n" in r.out, r
    r = check(bins, vm, pool, "--json")
    assert r.rc == 0, r
    assert r.json()["target"] == {"name": pool.target, "kind": "ceph", "reached": True,
                                  "lock_holder": None}, r.json()["target"]

    # Someone holds the VM's lock: named, and a backup now would wait for it.
    obj = f"stillpoint.vm.{vm.uuid}"
    cookie = "otherhost pid 4242 since 2026-12-07T10:00:00Z"
    pool.rados("lock", "get", obj, "stillpoint", "--lock-cookie", cookie, "--lock-type",
               "exclusive", "--lock-duration", "60")
    try:
        r = check(bins, vm, pool, "--json")
        assert r.rc == 0, r
        assert r.json()["target"]["lock_holder"] == cookie, r.json()["target"]
        assert any(cookie in w for w in r.json()["warnings"]), r
    finally:
        info = json.loads(pool.rados("lock", "info", obj, "stillpoint").stdout)
        for locker in info.get("lockers", []):
            pool.rados("lock", "break", obj, "stillpoint", locker["name"], "--lock-cookie",
                       locker["cookie"], check=False)

    # A key the cluster does not know: refused, with what to set.
    key = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True, text=True,
                         check=True, timeout=sp_ceph.CLIENT_TIMEOUT).stdout.strip()
    bad = tmp_path / "bad.keyring"
    bad.write_text(f"[client.{pool.ceph.user}]\n\tkey = {key}\n")
    os.chmod(bad, 0o600)
    r = check(bins, vm, pool, "--set", f"ceph_keyring={bad}")
    assert r.rc == 3 and f"target {pool.target} cannot be reached" in r.err, r
    assert "ceph_keyring" in r.err and "NOT reached" in r.out, r
    # A pool that is not there.
    r = run([bins.stillpoint, "check", vm.name, *pool.sets(), "--set", "target=rbd:sp-none"],
            timeout=TIMEOUT)
    assert r.rc == 3 and "sp-none" in r.err and "cannot be reached" in r.err, r
