"""stillpoint-copy into RBD (docs/design.md, "Points in Ceph") against the
test cluster (sp_ceph.py): a full point into a new image, incrementals and a
diff into the same image, each followed by the snapshot that is the point's
disk. Every snapshot is compared with the source as it was at that point
(qemu-img compare through QEMU's rbd driver, an independent reader), and zero
ranges are read back as zeroes where the parent snapshot had data."""
import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

import sp_ceph
import sp_nbd
from sp_nbd import CLUSTER, MiB
from test_copy import done, failed, slow_source, SLOW

# Not a multiple of 64 KiB nor of RBD's 4 MiB objects.
ODD_SIZE = 24 * MiB + 3584
TIMEOUT = 120  # a hard bound on every copier run (the cluster may hang)


def rbd_env(ceph, uri, disk, image, snap, level="full", bitmap="", parent_snap=None,
            size=None):
    """The copier contract's environment for an RBD destination."""
    out = f"rbd:{ceph.pool}/{image}@{snap}"
    env = sp_nbd.copier_env(uri, disk, "/nonexistent/unused", level=level, bitmap=bitmap,
                            size=size)
    env.update({
        "STILLPOINT_OUTPUT": out,
        "STILLPOINT_PARENT_OUTPUT": f"rbd:{ceph.pool}/{image}@{parent_snap}" if parent_snap else "",
        "STILLPOINT_POINT_DIR": "",
        "STILLPOINT_CHECKPOINT": snap,
        "STILLPOINT_CEPH_CONF": ceph.conf,
        "STILLPOINT_CEPH_USER": ceph.user,
        "STILLPOINT_CEPH_KEYRING": ceph.keyring,
        "STILLPOINT_CEPH_TIMEOUT": "15",
    })
    return env


def copy(bins, env, args=()):
    cp = subprocess.run([bins.copy, *args], env={**os.environ, **env}, capture_output=True,
                        text=True, timeout=TIMEOUT)

    class R:
        rc, out, err = cp.returncode, cp.stdout, cp.stderr

        def __repr__(self):
            return f"<rc={self.rc}\n{self.err}>"
    return R()


def compare(ceph, ref_raw, image, snap):
    """qemu-img compare of an RBD snapshot with a raw reference file."""
    cp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", ref_raw,
                         ceph.qemu_rbd(image, snap)], capture_output=True, text=True,
                        timeout=sp_ceph.CLIENT_TIMEOUT)
    return cp.returncode, cp.stdout + cp.stderr


def compare_raw(a, b):
    cp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", a, b],
                        capture_output=True, text=True, timeout=sp_ceph.CLIENT_TIMEOUT)
    return cp.returncode, cp.stdout + cp.stderr


def reads_zero(ceph, image, snap, off, length):
    """qemu-io reads [off, off+length) of the snapshot and checks every byte is 0."""
    cp = subprocess.run(["qemu-io", "-r", "-f", "raw", "-c", f"read -P 0 {off} {length}",
                         ceph.qemu_rbd(image, snap)], capture_output=True, text=True,
                        timeout=sp_ceph.CLIENT_TIMEOUT)
    return cp.returncode == 0 and "verification failed" not in cp.stdout, cp.stdout + cp.stderr


OBJECT = 4 * MiB  # RBD's default object size (order 22)


def objects_of(extents):
    """The RBD objects [(offset, length)] extents touch."""
    return {o for off, ln in extents for o in range(off // OBJECT, (off + ln - 1) // OBJECT + 1)}


def snap_diff(ceph, image, from_snap, snap):
    """[(offset, length)] that changed from from_snap to snap (rbd diff
    --from-snap). Not exactly the bytes written: an object that grows reports
    the gap from its old end too, so tests compare the objects touched."""
    out = ceph.rbd("diff", "--from-snap", from_snap, "--format", "json",
                   f"{ceph.pool}/{image}@{snap}").stdout
    return [(e["offset"], e["length"]) for e in json.loads(out)]


def snapshots(ceph, image):
    return [s["name"] for s in
            json.loads(ceph.rbd("snap", "ls", "--format", "json", f"{ceph.pool}/{image}").stdout)]


def image_exists(ceph, image):
    return image in ceph.rbd("ls", ceph.pool).stdout.split()


@contextlib.contextmanager
def rbd_image(ceph, name):
    """Removes the image (and its snapshots) after the test, whatever happened."""
    try:
        yield name
    finally:
        ceph.rbd("snap", "purge", f"{ceph.pool}/{name}", check=False)
        ceph.rbd("rm", f"{ceph.pool}/{name}", check=False)


def snapshot_source(s, path):
    """The source as it is now, as a raw file: the point's reference."""
    sp_nbd.sh("qemu-img", "convert", "-f", "qcow2", "-O", "raw", s.image, path)
    return path


def test_rbd_chain_from_qemu_nbd(bins, ceph, tmp_path):
    """Full, two incrementals (one zeroing data the parent has, one with
    nothing changed) and a diff into one image; each snapshot equals the source
    at its time, also after later points were written, and RBD stores about
    the dirty bytes per incremental."""
    s = sp_nbd.LocalSource(str(tmp_path), ODD_SIZE)
    rnd = sp_nbd.random_file(str(tmp_path / "rand"), 2 * MiB, seed=21)
    s.io(f"write -s {rnd} 0 2M", "write -P 0x11 5M 3M", f"write -s {rnd} 17M 1536K",
         "write -P 0 9M 1M", f"write -P 0x5a {ODD_SIZE - 512} 512")
    s.add_bitmap("since-full")
    s.add_bitmap("p0")
    refs = {}
    with rbd_image(ceph, "copy-chain") as image:
        with s.export() as uri:
            r = copy(bins, rbd_env(ceph, uri, "vda", image, "p0", size=ODD_SIZE))
        n = done(r, "vda")
        # Allocated data only; zeroes are not written into a new image.
        # (the last cluster, holding the disk's last 512 bytes, is 3584 bytes short)
        assert n["read"] == 2 * MiB + 3 * MiB + 1536 * 1024 + 1 * MiB + ODD_SIZE % CLUSTER
        assert n["zeroed"] == 0 and n["written"] == n["read"] - 1 * MiB
        refs["p0"] = snapshot_source(s, str(tmp_path / "p0.raw"))
        rc, text = compare(ceph, refs["p0"], image, "p0")
        assert rc == 0, text

        rounds = [
            # Zeroes over the full's data: a 64 KiB cluster in the middle of a
            # 4 MiB object, a discard of 1 MiB, zero bytes written as data;
            # plus new data and the disk's last bytes.
            ["write -z 5184K 64K", "discard 6M 1M", "write -P 0 7M 128K",
             f"write -s {rnd} 3M 300K", f"write -P 0x77 {ODD_SIZE - 512} 512"],
            [],  # nothing changed
        ]
        prev = "p0"
        for i, commands in enumerate(rounds, 1):
            if commands:
                s.io(*commands)
            s.add_bitmap(f"p{i}")
            with s.export(bitmap=prev) as uri:
                ctx = f"qemu:dirty-bitmap:{prev}"
                dirty = sp_nbd.dirty(uri, ctx)
                r = copy(bins, rbd_env(ceph, uri, "vda", image, f"p{i}", level="inc",
                                       bitmap=ctx, parent_snap=prev, size=ODD_SIZE))
            n = done(r, "vda")
            s.remove_bitmap(prev)
            refs[f"p{i}"] = snapshot_source(s, str(tmp_path / f"p{i}.raw"))
            rc, text = compare(ceph, refs[f"p{i}"], image, f"p{i}")
            assert rc == 0, text
            dirty_bytes = sum(ln for _, ln in dirty)
            changed = snap_diff(ceph, image, prev, f"p{i}")
            assert n["written"] + n["zeroed"] <= 1.1 * dirty_bytes + CLUSTER * len(dirty), n
            # RBD changed only objects the dirty extents touch.
            assert objects_of(changed) <= objects_of(dirty), (changed, dirty)
            if not commands:
                assert dirty == [] and n == {"read": 0, "written": 0, "zeroed": 0}
                assert changed == []
            else:
                assert n["zeroed"] >= 64 * 1024 + 1 * MiB + 128 * 1024, n
                # The zeroes read back as zeroes where the parent has data.
                for off, ln in ((5184 * 1024, 64 * 1024), (6 * MiB, 1 * MiB),
                                (7 * MiB, 128 * 1024)):
                    ok, text = reads_zero(ceph, image, f"p{i}", off, ln)
                    assert ok, text
                    ok, _ = reads_zero(ceph, image, prev, off, ln)
                    assert not ok, f"the parent had data at {off}"
            prev = f"p{i}"

        # A diff: everything since the full, into the same image.
        s.io("write -P 0x99 20M 1M")
        with s.export(bitmap="since-full") as uri:
            ctx = "qemu:dirty-bitmap:since-full"
            r = copy(bins, rbd_env(ceph, uri, "vda", image, "d3", level="diff", bitmap=ctx,
                                   parent_snap=prev, size=ODD_SIZE))
        done(r, "vda")
        refs["d3"] = snapshot_source(s, str(tmp_path / "d3.raw"))
        assert snapshots(ceph, image) == ["p0", "p1", "p2", "d3"]
        # Every snapshot still reads as its point: later writes went to the head.
        for snap, ref in refs.items():
            rc, text = compare(ceph, ref, image, snap)
            assert rc == 0, (snap, text)


def test_rbd_from_libvirt_pull_backup(bins, ceph, make_vm, tmp_path):
    """The real source: libvirt pull-mode backup jobs of a running VM, a full
    and an incremental with checkpoints; each snapshot equals the job's
    export (the disk at backup-begin)."""
    vm = make_vm(disks=(("vda", "qcow2", ODD_SIZE),))
    vm.write("vda", 0x21, 1 * MiB, 3 * MiB)
    vm.write("vda", 0x22, 12 * MiB, 1 * MiB)
    with rbd_image(ceph, f"{vm.uuid}.vda.p0") as image:
        with sp_nbd.PullJob(vm, ["vda"], "cp0") as job:
            r = copy(bins, rbd_env(ceph, job.uri("vda"), "vda", image, "p0",
                                   size=vm.sizes["vda"]))
            done(r, "vda")
            rc, text = compare_raw(job.uri("vda"), ceph.qemu_rbd(image, "p0"))
            assert rc == 0, text
        vm.write("vda", 0x31, 2 * MiB + 4096, 8192)
        vm.zero("vda", 12 * MiB, 512 * 1024)
        vm.write("vda", 0x32, ODD_SIZE - 512, 512)
        with sp_nbd.PullJob(vm, ["vda"], "cp1", incremental="cp0") as job:
            ctx = "qemu:dirty-bitmap:backup-vda"
            dirty = sp_nbd.dirty(job.uri("vda"), ctx)
            r = copy(bins, rbd_env(ceph, job.uri("vda"), "vda", image, "p1", level="inc",
                                   bitmap=ctx, parent_snap="p0", size=vm.sizes["vda"]))
            n = done(r, "vda")
            rc, text = compare_raw(job.uri("vda"), ceph.qemu_rbd(image, "p1"))
            assert rc == 0, text
        assert 0 < n["written"] + n["zeroed"] <= sum(ln for _, ln in dirty)
        assert objects_of(snap_diff(ceph, image, "p0", "p1")) <= objects_of(dirty)


def test_rbd_refusals_leave_nothing(bins, ceph, src_small, tmp_path):
    """What must not be written is refused before anything is: a full into an
    existing image, an inc whose parent is not the image's newest snapshot or
    whose snapshot exists, a missing image; a copy that fails midway removes the
    new image of a full; SIGTERM ends a copy the same way."""
    s, uri_ctx = src_small
    with rbd_image(ceph, "copy-refusals") as image:
        with uri_ctx() as uri:
            done(copy(bins, rbd_env(ceph, uri, "vda", image, "p0")), "vda")
            done(copy(bins, rbd_env(ceph, uri, "vda", image, "p1", level="inc",
                                    bitmap="qemu:dirty-bitmap:b0", parent_snap="p0")), "vda")
            cases = [
                (rbd_env(ceph, uri, "vda", image, "p9"), "the image exists already"),
                (rbd_env(ceph, uri, "vda", image, "p9", level="inc",
                         bitmap="qemu:dirty-bitmap:b0", parent_snap="p0"),
                 "newest snapshot is p1, not the parent p0"),
                (rbd_env(ceph, uri, "vda", image, "p1", level="inc",
                         bitmap="qemu:dirty-bitmap:b0", parent_snap="p1"),
                 "exists already: a point is never replaced"),
                (rbd_env(ceph, uri, "vda", "copy-missing", "p1", level="inc",
                         bitmap="qemu:dirty-bitmap:b0", parent_snap="p0"),
                 "an incremental needs its chain's image"),
                (rbd_env(ceph, uri, "vda", image, "p9", size=7 * MiB),
                 "STILLPOINT_DISK_SIZE says"),
            ]
            for env, msg in cases:
                line = failed(copy(bins, env))
                assert msg in line, line
            bad = rbd_env(ceph, uri, "vda", "copy-x", "p0")
            bad["STILLPOINT_CEPH_KEYRING"] = "/dev/null"
            line = failed(copy(bins, bad))
            assert "cannot connect to the Ceph cluster" in line and "client.stillpoint" in line
        assert snapshots(ceph, image) == ["p0", "p1"]
        assert not image_exists(ceph, "copy-missing") and not image_exists(ceph, "copy-x")

    # A read error midway: the full's new image is removed.
    with rbd_image(ceph, "copy-readerr") as image:
        sock = str(tmp_path / "err.sock")
        proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "--filter=error", "pattern", "16M",
                                 "error-pread=EIO", "error-pread-rate=100%",
                                 "error-pread-file=" + str(tmp_path / "trigger")])
        try:
            sp_nbd.wait_for_socket(sock, proc)
            open(tmp_path / "trigger", "w").close()
            line = failed(copy(bins, rbd_env(ceph, f"nbd+unix:///?socket={sock}", "vda", image,
                                             "p0")))
            assert "from the export" in line, line
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert not image_exists(ceph, image)

    # SIGTERM during a slow copy: exit 1, one line, the new image removed.
    with rbd_image(ceph, "copy-sigterm") as image, slow_source(tmp_path) as uri:
        env = {**os.environ, **rbd_env(ceph, uri, "vda", image, "p0")}
        p = subprocess.Popen([bins.copy, *SLOW], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while not image_exists(ceph, image) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert p.poll() is None, "the copy ended before the signal"
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=TIMEOUT)[1]
        assert p.returncode == 1, err
        assert err.strip().splitlines() == ["stillpoint-copy: vda: error: interrupted by SIGTERM"]
        assert not image_exists(ceph, image)


@pytest.fixture
def src_small(tmp_path):
    """A small qcow2 source with some data and bitmap b0; yields it and a
    function returning its export's context manager."""
    s = sp_nbd.LocalSource(str(tmp_path), 8 * MiB)
    s.io("write -P 0x42 1M 1M")
    s.add_bitmap("b0")
    s.io("write -P 0x43 3M 64K")
    return s, lambda: s.export(bitmap="b0")


@pytest.mark.slow  # ~30 s; what it proves does not depend on the build
def test_osd_killed_during_copy_fails_in_bounded_time(bins, ceph, tmp_path):
    """The OSD dies midway through a copy: by default librbd would wait for it
    forever; with the copier's op timeout the copy fails within a bound, with
    one line saying why. The OSD comes back and the next copy succeeds."""
    timeout_s = 10
    with rbd_image(ceph, "copy-osd-killed") as image:
        with slow_source(tmp_path, "64M") as uri:
            env = {**os.environ, **rbd_env(ceph, uri, "vda", image, "p0")}
            env["STILLPOINT_CEPH_TIMEOUT"] = str(timeout_s)
            p = subprocess.Popen([bins.copy, *SLOW], env=env, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.time() + 30
                while not image_exists(ceph, image) and time.time() < deadline:
                    time.sleep(0.2)
                time.sleep(1)
                assert p.poll() is None, "the copy ended before the OSD was killed"
                killed = time.monotonic()
                ceph.kill_osd()
                err = p.communicate(timeout=TIMEOUT)[1]
                took = time.monotonic() - killed
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                ceph.start_osd()
        assert p.returncode == 1, err
        # Progress lines (every 10 s), then the one error line.
        lines = err.strip().splitlines()
        assert "error:" in lines[-1] and "did not answer in time" in lines[-1], err
        assert sum("error" in ln for ln in lines) == 1, err
        # A write times out after timeout_s; removing the new image does too.
        assert took < 6 * timeout_s, took
        print(f"copy failed {took:.1f} s after the OSD was killed")
    # The cluster serves again: a new full copy succeeds.
    (tmp_path / "again").mkdir()
    with rbd_image(ceph, "copy-after-osd") as image, \
            slow_source(tmp_path / "again", "2M") as uri:
        done(copy(bins, rbd_env(ceph, uri, "vda", image, "p0")), "vda")
