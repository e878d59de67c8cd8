"""`stillpoint mount` / `umount` (issue 18): a point's disk read-only, its file
systems under a directory, with no kernel nbd module (qemu-nbd, nbdfuse, a
loop device). Points of the tiny guest's ext4 data disk (a whole-disk file
system) show files written before the point with their content and not those
written after, through an incremental point's chain; a disk with a partition
table, written from the host into a firmware-only VM, comes back one
directory per partition. umount, a killed helper and a busy file system each
leave no process, socket, loop device or mount behind."""
import hashlib
import os
import secrets
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

import sp_consistency as spc
from conftest import run

EXTRA = ("pause_max_ms=10000",)
MiB = 1 << 20


def run_dir(d):
    key = hashlib.sha256(str(Path(d).resolve()).encode()).hexdigest()[:16]
    return Path("/run/stillpoint/mounts") / key


def leftovers(d):
    """What of a mount of d is still on the machine: processes naming its run
    directory, loop devices backed by a file in it, mounts on d, below d or in
    the run directory, and the run directory itself (socket included)."""
    run_d = str(run_dir(d))
    out = []
    ps = subprocess.run(["pgrep", "-af", run_d], capture_output=True, text=True).stdout
    out += [f"process: {line}" for line in ps.splitlines()]
    for b in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if b.read_text().startswith(run_d):
                out.append(f"loop: {b.parent.parent.name}")
        except OSError:
            pass
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(str(d)) or mp.startswith(run_d):
                out.append(f"mount: {mp}")
    if os.path.exists(run_d):
        out.append(f"run dir: {sorted(os.listdir(run_d))}")
    return out


def mount(bins, point, d, *extra):
    r = run([bins.stillpoint, "mount", str(point), str(d), *extra])
    assert r.rc == 0, r
    return r


def umount(bins, d):
    r = run([bins.stillpoint, "umount", str(d)])
    assert r.rc == 0, r
    assert leftovers(d) == []
    assert os.listdir(d) == []
    return r


@pytest.fixture(scope="module")
def guest_points(bins, tiny_guest, confdir, tmp_path_factory):
    """A full and an incremental point of the guest's data disk: one file
    before the full, one between the two, one after the incremental."""
    g = tiny_guest
    tag = secrets.token_hex(4)
    target = tmp_path_factory.mktemp("mount-points")
    g.check(f"echo before-{tag} > /data/m-before-{tag} && sync")
    full = spc.take_point(bins.stillpoint, g.name, target, "freeze", EXTRA)
    g.check(f"echo between-{tag} > /data/m-between-{tag} && sync")
    inc = spc.take_point(bins.stillpoint, g.name, target, "freeze", EXTRA)
    g.check(f"echo after-{tag} > /data/m-after-{tag} && sync")
    assert inc.manifest["level"] == "inc", inc.manifest["level"]
    return full.path, inc.path, tag


@pytest.mark.slow
def test_files_before_the_point_and_not_after(bins, guest_points, tmp_path):
    full, inc, tag = guest_points
    d = tmp_path / "m"
    d.mkdir()
    r = mount(bins, inc, d)
    assert f"{d}  ext4, whole disk, read-only" in r.out, r
    assert (d / f"m-before-{tag}").read_text() == f"before-{tag}\n"
    assert (d / f"m-between-{tag}").read_text() == f"between-{tag}\n"
    assert not (d / f"m-after-{tag}").exists()
    # Read-only all the way down.
    with pytest.raises(OSError):
        (d / "new").write_text("x")
    umount(bins, d)
    # The full point, below the incremental in the chain, lacks the second file.
    r = run([bins.stillpoint, "mount", str(full), str(d), "--json"])
    assert r.rc == 0, r
    assert r.json()["mounts"][0]["target"] == str(d)
    assert (d / f"m-before-{tag}").exists() and not (d / f"m-between-{tag}").exists()
    umount(bins, d)


@pytest.mark.slow
def test_killed_helpers_then_stale_mount_replaced(bins, guest_points, tmp_path):
    full, inc, tag = guest_points
    d = tmp_path / "m"
    d.mkdir()
    mount(bins, full, d)
    for name in ("nbdfuse", "qemu-nbd"):
        pids = subprocess.run(["pgrep", "-f", f"{name}.*{run_dir(d)}"], capture_output=True,
                              text=True).stdout.split()
        assert pids, name
        for p in pids:
            os.kill(int(p), signal.SIGKILL)
    time.sleep(0.5)
    # A second mount sees the first one broken, takes it down, mounts anew.
    r = mount(bins, inc, d)
    assert "stale" in r.err, r
    assert (d / f"m-between-{tag}").exists()
    # A whole one is not replaced.
    r = run([bins.stillpoint, "mount", str(full), str(d)])
    assert r.rc == 3 and "umount" in r.err, r
    umount(bins, d)


@pytest.mark.slow
def test_busy_file_system_is_not_forced(bins, guest_points, tmp_path):
    _, inc, tag = guest_points
    d = tmp_path / "m"
    d.mkdir()
    mount(bins, inc, d)
    holder = subprocess.Popen(["sleep", "60"], cwd=d)
    try:
        r = run([bins.stillpoint, "umount", str(d)])
        assert r.rc == 1 and "busy" in r.err and "fuser" in r.err, r
        # Nothing below was torn down: the files still read.
        assert (d / f"m-before-{tag}").read_text() == f"before-{tag}\n"
    finally:
        holder.kill()
        holder.wait()
    umount(bins, d)


def mbr_disk(path, files):
    """A raw disk with an MBR of two Linux partitions, each an ext4 made with
    mkfs.ext4 -d from files[i] ({name: text})."""
    size, p1, p2 = 64 * MiB, (2048, 40960), (43008, 86016)
    with open(path, "wb") as f:
        f.truncate(size)
    mbr = bytearray(512)
    for i, (start, count) in enumerate((p1, p2)):
        mbr[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", 0, b"\0" * 3, 0x83,
                                                     b"\0" * 3, start, count)
    mbr[510:512] = b"\x55\xaa"
    with open(path, "r+b") as f:
        f.write(mbr)
    for i, (start, count) in enumerate((p1, p2)):
        root = Path(f"{path}.root{i}")
        root.mkdir()
        for name, text in files[i].items():
            (root / name).write_text(text)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), "-E",
                        f"offset={start * 512}", str(path), f"{count // 2}k"], check=True)


def test_partitions_and_disks_of_a_vm(bins, make_vm, test_user, tmp_path):
    vm = make_vm(tag="mount", start=False)
    raw = tmp_path / "parts.raw"
    mbr_disk(raw, [{"one.txt": "partition one\n"}, {"two.txt": "partition two\n"}])
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    vm.disks["vda"]], check=True)
    vm.start()
    target = tmp_path / "points"
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json"])
    assert r.rc == 0, r
    point = r.json()["path"]
    d = tmp_path / "m"
    d.mkdir()
    # Three disks: which one must be said.
    r = run([bins.stillpoint, "mount", point, str(d)])
    assert r.rc == 2 and "--disk" in r.err and "vda" in r.err, r
    r = run([bins.stillpoint, "mount", point, str(d), "--disk", "vda"], user=test_user)
    assert r.rc == 3 and "root" in r.err, r
    (d / "x").write_text("")
    r = run([bins.stillpoint, "mount", point, str(d), "--disk", "vda"])
    assert r.rc == 3 and "not empty" in r.err, r
    (d / "x").unlink()
    r = mount(bins, point, d, "--disk", "vda")
    assert (d / "1" / "one.txt").read_text() == "partition one\n"
    assert (d / "2" / "two.txt").read_text() == "partition two\n"
    assert sorted(os.listdir(d)) == ["1", "2"]
    umount(bins, d)
    # An empty disk holds nothing to mount: refused, and nothing stays.
    r = run([bins.stillpoint, "mount", point, str(d), "--disk", "vdb"])
    assert r.rc == 1 and "no file system" in r.err, r
    assert leftovers(d) == [] and os.listdir(d) == []
