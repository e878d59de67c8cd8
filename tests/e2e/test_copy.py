"""stillpoint-copy against real NBD servers: qemu-nbd exporting a
local qcow2 with persistent bitmaps, libvirt pull-mode backup jobs of a
running VM, and nbdkit where a server must misbehave on purpose (slow,
failing). Every chain is checked with qemu-img compare and qemu-img check."""
import contextlib
import hashlib
import os
import pty
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

import sp_nbd
from conftest import run
from sp_nbd import CLUSTER, MiB

# A size that is not a multiple of 64 KiB, so the last cluster is short.
ODD_SIZE = 24 * MiB + 3584


def copy(bins, env=None, args=(), timeout=300):
    return run([bins.copy, *args], env=env, timeout=timeout)


def done(r, disk, output=None):
    """The success line is the last line, in the exact form the
    coordinator parses; returns its numbers. With output, the image's
    SHA-256 the line gives (hashed as it was written) must be the file's."""
    assert r.rc == 0, r
    last = r.err.rstrip("\n").split("\n")[-1]
    m = re.match(sp_nbd.DONE_RE, last)
    assert m, f"last line is not the success line: {last!r}"
    assert m["disk"] == disk
    if output is not None:
        with open(output, "rb") as f:
            assert m["sha256"] == hashlib.file_digest(f, "sha256").hexdigest()
    return {k: int(v) for k, v in m.groupdict().items() if k in ("read", "written", "zeroed")}


def failed(r, rc=1):
    """A failure: the exit code and exactly one line on stderr."""
    assert r.rc == rc, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r
    return lines[0]


def nothing_left(output):
    assert not os.path.lexists(output)
    assert not os.path.lexists(output + ".part")


def assert_chain_ok(top, reference, ref_fmt):
    rc, text = sp_nbd.compare(top, reference, ref_fmt)
    assert rc == 0, text
    rc, report = sp_nbd.check(top)
    assert rc == 0 and report.get("corruptions", 0) == 0 and report.get("leaks", 0) == 0, report


def assert_overlay_small(top, dirty):
    """The overlay holds about the dirty bytes: at most 1.2x plus one
    cluster per extent (extents are widened to whole clusters)."""
    dirty_bytes = sum(n for _, n in dirty)
    allocated = sp_nbd.top_allocated(top)
    assert allocated <= 1.2 * dirty_bytes + CLUSTER * len(dirty), (allocated, dirty_bytes)
    return allocated, dirty_bytes


def point_output(target, point_id, disk):
    return os.path.join(target, "sptest-copy", f"{point_id}.partial", "disks", f"{disk}.qcow2")


def publish(target, point_id):
    """What the coordinator does once every disk is safe."""
    d = os.path.join(target, "sptest-copy")
    os.rename(os.path.join(d, f"{point_id}.partial"), os.path.join(d, point_id))
    return os.path.join(d, point_id)


@pytest.fixture
def src(tmp_path):
    """A small local source holding random data, a text run and an
    allocated-but-zero range; bitmap b0 tracks changes after this."""
    s = sp_nbd.LocalSource(str(tmp_path), ODD_SIZE)
    rnd = sp_nbd.random_file(str(tmp_path / "rand"), 4 * MiB, seed=1)
    txt = sp_nbd.text_file(str(tmp_path / "text"), 2 * MiB, seed=2)
    s.io(f"write -s {rnd} 1M 4M", f"write -s {txt} 9M 2M", "write -P 0 12M 1M",
         "write -z 14M 1M", f"write -s {rnd} 20M 1M")
    s.add_bitmap("b0")
    return s


# -- chains ------------------------------------------------------------------

def test_chain_from_qemu_nbd(bins, tmp_path):
    """Full, three incrementals (one with nothing changed) and a diff from a
    local qcow2 exported by qemu-nbd, through the contract's environment
    only. Each top of chain reads exactly like the source."""
    target = str(tmp_path / "target")
    s = sp_nbd.LocalSource(str(tmp_path), ODD_SIZE)
    rnd = sp_nbd.random_file(str(tmp_path / "rand"), 2 * MiB, seed=7)
    s.io(f"write -s {rnd} 0 2M", "write -P 0x11 5M 3M", f"write -s {rnd} 17M 1536K",
         "write -P 0 9M 1M")  # allocated, but zero bytes
    s.add_bitmap("since-full")
    s.add_bitmap("p0")

    out = point_output(target, "p0", "vda")
    with s.export() as uri:
        r = copy(bins, env=sp_nbd.copier_env(uri, "vda", out, size=ODD_SIZE))
    n = done(r, "vda", out)
    # Only allocated data is read; what reads as zero is not written: a
    # new image reads as zero already.
    assert n["read"] == 2 * MiB + 3 * MiB + 1536 * 1024 + 1 * MiB
    assert n["written"] == n["read"] - 1 * MiB and n["zeroed"] == 0
    assert not any(e["start"] <= 9 * MiB < e["start"] + e["length"]
                   for e in sp_nbd.map_top(out) if e["data"])
    # Created 0600 in directories the copier made 0700.
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(out)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(os.path.dirname(out))).st_mode) == 0o700
    assert_chain_ok(out, s.image, "qcow2")
    assert sp_nbd.info(out).get("backing-filename") is None
    full_point = publish(target, "p0")

    rounds = [
        # random data, a discard of old data, sub-cluster zeroes, the last byte
        [f"write -s {rnd} 3M 300K", "discard 5M 1M", "write -z 17M 4096",
         "write -z -u 6M 512K", f"write -P 0x5a {ODD_SIZE - 512} 512",
         "write -P 0x33 65000 1000"],
        # zeroes over data and over nothing, rewrites of the same clusters
        ["write -z 0 1M", "write -z 22M 64K", f"write -s {rnd} 3M 64K",
         "write -P 0x44 12345 100", "write -P 0 18M 128K"],  # the last: zero data
        [],  # nothing changed: an empty dirty set
    ]
    parent = os.path.join(full_point, "disks", "vda.qcow2")
    prev_id = "p0"
    for i, commands in enumerate(rounds, 1):
        if commands:
            s.io(*commands)
        s.add_bitmap(f"p{i}")
        out = point_output(target, f"p{i}", "vda")
        with s.export(bitmap=f"p{i - 1}") as uri:
            ctx = f"qemu:dirty-bitmap:p{i - 1}"
            dirty = sp_nbd.dirty(uri, ctx)
            env = sp_nbd.copier_env(uri, "vda", out, level="inc", bitmap=ctx, parent=parent,
                                    size=ODD_SIZE)
            r = copy(bins, env=env)
        n = done(r, "vda", out)
        assert_chain_ok(out, s.image, "qcow2")
        # The backing file is relative and names the sibling point.
        assert sp_nbd.info(out)["backing-filename"] == f"../../{prev_id}/disks/vda.qcow2"
        allocated, dirty_bytes = assert_overlay_small(out, dirty)
        if not commands:
            assert dirty == [] and allocated == 0
            assert n == {"read": 0, "written": 0, "zeroed": 0}
        else:
            assert n["written"] + n["zeroed"] <= 1.1 * dirty_bytes + CLUSTER * len(dirty)
            assert n["zeroed"] > 0  # discards, zeroes and zero data became write-zeroes
        if i == 2:
            # Zero bytes written as data in the source became a zero cluster
            # here, which hides the parent's old data without storing any.
            at = [e for e in sp_nbd.map_top(out)
                  if e["start"] <= 18 * MiB < e["start"] + e["length"]]
            assert at and at[0]["zero"] and not at[0]["data"], at
        s.remove_bitmap(f"p{i - 1}")
        point = publish(target, f"p{i}")
        # Still a valid chain after the rename of <id>.partial.
        assert_chain_ok(os.path.join(point, "disks", "vda.qcow2"), s.image, "qcow2")
        parent = os.path.join(point, "disks", "vda.qcow2")
        prev_id = f"p{i}"

    # A diff: everything since the full, on top of the full.
    out = point_output(target, "d4", "vda")
    with s.export(bitmap="since-full") as uri:
        ctx = "qemu:dirty-bitmap:since-full"
        dirty = sp_nbd.dirty(uri, ctx)
        r = copy(bins, env=sp_nbd.copier_env(uri, "vda", out, level="diff", bitmap=ctx,
                                             parent=os.path.join(full_point, "disks",
                                                                 "vda.qcow2")))
    done(r, "vda")
    assert sp_nbd.info(out)["backing-filename"] == "../../p0/disks/vda.qcow2"
    assert_chain_ok(out, s.image, "qcow2")
    assert_overlay_small(out, dirty)


def test_chain_from_libvirt_pull_backup(bins, make_vm, tmp_path):
    """The real thing: pull-mode backup jobs of a running VM with
    checkpoints; writes between points through the VM's own block layer.
    Every copy is compared with the job's export, the point-in-time view."""
    MiB_ = MiB
    vm = make_vm(disks=(("vda", "qcow2", ODD_SIZE), ("vdb", "qcow2", 16 * MiB_),
                        ("vdc", "raw", 8 * MiB_)))
    rnd = sp_nbd.random_file(os.path.join(vm.workdir, "rand"), 2 * MiB_, seed=3)
    vm.qemu_io("vda", f"write -s {rnd} 1M 2M")
    vm.write("vda", 0x21, 10 * MiB_, 3 * MiB_)
    vm.write("vdb", 0x22, 0, 1 * MiB_)
    vm.write("vdc", 0x23, 4 * MiB_, 1 * MiB_)
    target = str(tmp_path / "target")

    def take(point_id, level, checkpoint, incremental, parents):
        disks = ["vda", "vdb"] + (["vdc"] if level == "full" else [])
        outs, stats = {}, {}
        with sp_nbd.PullJob(vm, disks, checkpoint, incremental,
                            checkpoint_disks=["vda", "vdb"]) as job:
            for t in disks:
                out = point_output(target, point_id, t)
                bitmap = f"qemu:dirty-bitmap:backup-{t}" if t in parents else ""
                dirty = sp_nbd.dirty(job.uri(t), bitmap) if bitmap else None
                env = sp_nbd.copier_env(job.uri(t), t, out, level=level if bitmap else "full",
                                        bitmap=bitmap, parent=parents.get(t, ""),
                                        size=vm.sizes[t])
                r = copy(bins, env=env)
                stats[t] = done(r, t)
                assert_chain_ok(out, job.uri(t), "raw")
                if dirty is not None:
                    assert_overlay_small(out, dirty)
                    stats[t]["dirty"] = sum(n for _, n in dirty)
                outs[t] = out
        point = publish(target, point_id)
        return {t: os.path.join(point, "disks", f"{t}.qcow2") for t in outs}, stats

    tops, stats = take("p0", "full", "cp0", None, {})
    assert stats["vda"]["read"] == 5 * MiB_
    # raw: only its data, found by block status (qemu allocates a raw
    # image's first 4 KiB at creation: one more cluster).
    assert MiB_ <= stats["vdc"]["read"] <= MiB_ + CLUSTER

    rounds = [
        lambda: (vm.write("vda", 0x31, 2 * MiB_ + 4096, 8192),
                 vm.write("vda", 0x32, ODD_SIZE - 512, 512),  # the disk's last byte
                 vm.zero("vda", 10 * MiB_, 1 * MiB_),
                 vm.qemu_io("vda", f"write -s {rnd} 20M 1M"),
                 vm.discard("vda", 12 * MiB_, 1 * MiB_),
                 vm.write("vdb", 0x33, 8 * MiB_, 64 * 1024)),
        lambda: (vm.zero("vda", 0, 64 * 1024 + 512),
                 vm.write("vda", 0x41, 15 * MiB_, 3 * MiB_),
                 vm.zero("vdb", 0, 1 * MiB_)),
        lambda: None,  # nothing written: empty dirty sets
    ]
    for i, mutate in enumerate(rounds, 1):
        mutate()
        parents = {t: tops[t] for t in ("vda", "vdb")}
        new, stats = take(f"p{i}", "inc", f"cp{i}", f"cp{i - 1}", parents)
        for t in ("vda", "vdb"):
            assert sp_nbd.info(new[t])["backing-filename"] == f"../../p{i - 1}/disks/{t}.qcow2"
            assert stats[t]["written"] + stats[t]["zeroed"] <= \
                1.1 * stats[t]["dirty"] + CLUSTER * 4
            if i == 3:
                assert stats[t]["dirty"] == 0 and sp_nbd.top_allocated(new[t]) == 0
            tops[t] = new[t]
    # Round 2 zeroed vdb's only data: the overlay of p2 holds zero clusters
    # there (metadata, no data) that hide the parent's data.
    p2_vdb = os.path.join(target, "sptest-copy", "p2", "disks", "vdb.qcow2")
    first = sp_nbd.map_top(p2_vdb)[0]
    assert first["start"] == 0 and first["length"] >= MiB_
    assert first["zero"] and not first["data"]


def test_guest_writes_after_begin_do_not_leak_in(bins, make_vm, tmp_path):
    """The export is the disk at backup-begin even while the guest goes on:
    data overwritten, zeroed or discarded after begin, and holes written
    after it, read as they were. The copier's block status must come from
    that view too, or a region zeroed after begin would be skipped."""
    vm = make_vm(disks=(("vda", "qcow2", 16 * MiB),))
    vm.write("vda", 0x51, 1 * MiB, 4 * MiB)
    vm.write("vda", 0x52, 9 * MiB, 1 * MiB)
    target = str(tmp_path / "target")

    def at_begin(uri, name):
        """The export's content before the guest moves on: the reference
        (the image file itself may lag behind QEMU's qcow2 caches)."""
        path = str(tmp_path / name)
        sp_nbd.sh("nbdcopy", uri, path)
        return path

    def guest_goes_on(pattern):
        vm.zero("vda", 1 * MiB, 1 * MiB)            # zeroes over data
        vm.write("vda", pattern, 2 * MiB, 64 * 1024)  # new data over data
        vm.write("vda", pattern, 12 * MiB, 1 * MiB)   # data into a hole
        vm.zero("vda", 9 * MiB, 1 * MiB)

    with sp_nbd.PullJob(vm, ["vda"], "cp0") as job:
        before = at_begin(job.uri("vda"), "before0.raw")
        guest_goes_on(0x53)
        out = point_output(target, "p0", "vda")
        done(copy(bins, env=sp_nbd.copier_env(job.uri("vda"), "vda", out)), "vda")
    rc, text = sp_nbd.compare(out, before, "raw")
    assert rc == 0, text
    parent = os.path.join(publish(target, "p0"), "disks", "vda.qcow2")

    vm.write("vda", 0x54, 14 * MiB, 512 * 1024)
    with sp_nbd.PullJob(vm, ["vda"], "cp1", incremental="cp0") as job:
        before = at_begin(job.uri("vda"), "before1.raw")
        guest_goes_on(0x55)
        vm.zero("vda", 14 * MiB, 512 * 1024)        # the changed range, zeroed
        out = point_output(target, "p1", "vda")
        done(copy(bins, env=sp_nbd.copier_env(job.uri("vda"), "vda", out, level="inc",
                                              bitmap="qemu:dirty-bitmap:backup-vda",
                                              parent=parent)), "vda")
    rc, text = sp_nbd.compare(out, before, "raw")
    assert rc == 0, text


def test_sparse_server_many_extents(bins, tmp_path):
    """A server other than qemu (nbdkit sparse-random: hundreds of data and
    hole extents, base:allocation but no 64 KiB alignment): the copy reads
    only data and is identical."""
    sock = str(tmp_path / "k.sock")
    proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "sparse-random", "48M", "seed=5",
                             "percent=30", "runlength=102400"])
    try:
        sp_nbd.wait_for_socket(sock, proc)
        uri = f"nbd+unix:///?socket={sock}"
        extents = sp_nbd.nbd_map(uri, "base:allocation")
        data = sum(n for _, n, t in extents if not t & 2)
        assert len(extents) > 100
        out = str(tmp_path / "o" / "d.qcow2")
        n = done(copy(bins, args=["--uri", uri, "--output", out]), "d")
        # Whole clusters around each extent, never the holes in between.
        assert data <= n["read"] <= data + 2 * CLUSTER * len(extents)
        rc, text = sp_nbd.compare(out, uri, "raw")
        assert rc == 0, text
    finally:
        proc.terminate()
        proc.wait()


def test_server_block_size_limits(bins, tmp_path):
    """Requests respect the server's advertised block sizes: nbdkit's
    blocksize-policy filter fails any request above the maximum, so a copy
    that succeeds stayed within it (rounded down to whole clusters); a
    maximum below one cluster is refused up front."""
    # 197120 is 3 clusters and 512 bytes (a multiple of the minimum, as the
    # NBD spec requires, or nbdkit advertises nothing).
    for maximum, ok in ((197120, True), (32768, False)):
        sock = str(tmp_path / f"b{maximum}.sock")
        proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "--filter=blocksize-policy",
                                 "pattern", "8M", f"blocksize-maximum={maximum}",
                                 "blocksize-minimum=512", "blocksize-preferred=4096",
                                 "blocksize-error-policy=error"])
        try:
            sp_nbd.wait_for_socket(sock, proc)
            uri = f"nbd+unix:///?socket={sock}"
            out = str(tmp_path / f"o{maximum}" / "d.qcow2")
            r = copy(bins, args=["--uri", uri, "--output", out, "--request-size", "1M"])
            if ok:
                assert done(r, "d")["read"] == 8 * MiB
                rc, text = sp_nbd.compare(out, uri, "raw")
                assert rc == 0, text
            else:
                assert "do not fit 64 KiB clusters" in failed(r)
                nothing_left(out)
        finally:
            proc.terminate()
            proc.wait()


def test_full_copy_is_laid_out_in_disk_order(bins, tmp_path):
    """Writes leave in disk order whatever order reads complete in (two
    connections, many requests in flight), so the qcow2's data clusters
    follow the guest's order: one contiguous run in the file."""
    s = sp_nbd.LocalSource(str(tmp_path), 32 * MiB)
    rnd = sp_nbd.random_file(str(tmp_path / "rand"), 16 * MiB, seed=9)
    s.io(f"write -s {rnd} 8M 16M")
    out = str(tmp_path / "o" / "vda.qcow2")
    with s.export() as uri:
        done(copy(bins, args=["--uri", uri, "--output", out, "--request-size", "256K",
                              "--requests", "32", "--connections", "4"]), "vda")
    data = [e for e in sp_nbd.map_top(out) if e["data"]]
    assert len(data) == 1, data
    assert data[0]["start"] == 8 * MiB and data[0]["length"] == 16 * MiB


def test_compress(bins, src, tmp_path):
    """--compress: zstd clusters through qemu-nbd's compress filter, for a
    full and for an overlay; same content, smaller file."""
    out = str(tmp_path / "c" / "full.qcow2")
    plain = str(tmp_path / "p" / "full.qcow2")
    with src.export() as uri:
        done(copy(bins, args=["--uri", uri, "--output", out, "--compress"]), "full")
        done(copy(bins, args=["--uri", uri, "--output", plain]), "full")
    assert_chain_ok(out, src.image, "qcow2")
    assert sp_nbd.info(out)["format-specific"]["data"]["compression-type"] == "zstd"
    rc, report = sp_nbd.check(out)
    assert report["compressed-clusters"] > 0
    # The text compresses, the random data cannot: smaller, not tiny.
    assert os.path.getsize(out) < os.path.getsize(plain) - 1 * MiB

    txt = sp_nbd.text_file(str(tmp_path / "t2"), 1 * MiB, seed=4)
    src.io(f"write -s {txt} 2M 1M", "write -z 9M 64K", f"write -P 0x01 {ODD_SIZE - 1} 1")
    inc = str(tmp_path / "c" / "inc.qcow2")
    with src.export(bitmap="b0") as uri:
        done(copy(bins, args=["--uri", uri, "--output", inc, "--level", "inc", "--bitmap",
                              "b0", "--parent", out, "--compress"]), "inc")
    assert_chain_ok(inc, src.image, "qcow2")
    assert sp_nbd.check(inc)[1]["compressed-clusters"] > 0


# -- bad input: one line, exit code, nothing left behind ---------------------

def test_unreachable_uri(bins, tmp_path):
    out = str(tmp_path / "o" / "vda.qcow2")
    line = failed(copy(bins, args=["--uri", f"nbd+unix:///?socket={tmp_path}/none.sock",
                                   "--output", out, "--disk", "vda"]))
    assert line.startswith("stillpoint-copy: vda: error: cannot connect to nbd+unix:")
    nothing_left(out)
    assert not os.path.exists(os.path.dirname(out))


def test_missing_bitmap_context(bins, src, tmp_path):
    full = str(tmp_path / "full.qcow2")
    out = str(tmp_path / "inc.qcow2")
    with src.export() as uri:
        done(copy(bins, args=["--uri", uri, "--output", full]), "full")
        line = failed(copy(bins, args=["--uri", uri, "--output", out, "--level", "inc",
                                       "--bitmap", "b0", "--parent", full]))
    assert "has no block status context qemu:dirty-bitmap:b0" in line
    nothing_left(out)


def test_output_exists_or_is_a_symlink(bins, src, tmp_path):
    existing = tmp_path / "exists.qcow2"
    existing.write_bytes(b"keep me")
    victim = tmp_path / "victim"
    dangling = tmp_path / "dangling.qcow2"
    dangling.symlink_to(victim)
    to_file = tmp_path / "tofile.qcow2"
    to_file.symlink_to(existing)
    with src.export() as uri:
        for out in (existing, dangling, to_file):
            line = failed(copy(bins, args=["--uri", uri, "--output", str(out)]))
            assert "already exists" in line and "refusing" in line
            assert not os.path.lexists(str(out) + ".part")
    assert existing.read_bytes() == b"keep me"
    assert not victim.exists()  # the dangling link was not followed


def test_part_file_in_the_way(bins, src, tmp_path):
    """A .part that is not ours (another copier, a crash) is never reused
    nor removed."""
    out = tmp_path / "vda.qcow2"
    part = tmp_path / "vda.qcow2.part"
    part.write_bytes(b"someone else's")
    with src.export() as uri:
        line = failed(copy(bins, args=["--uri", uri, "--output", str(out)]))
    assert ".part" in line
    assert part.read_bytes() == b"someone else's"
    assert not out.exists()


def test_bad_parents(bins, src, tmp_path):
    missing = str(tmp_path / "missing.qcow2")
    small = str(tmp_path / "small.qcow2")
    sp_nbd.sh("qemu-img", "create", "-q", "-f", "qcow2", small, str(ODD_SIZE - 65536))
    raw = str(tmp_path / "raw.img")
    sp_nbd.sh("qemu-img", "create", "-q", "-f", "raw", raw, str(ODD_SIZE))
    orphan = str(tmp_path / "orphan.qcow2")  # its own backing file is gone
    gone = str(tmp_path / "gone.qcow2")
    sp_nbd.sh("qemu-img", "create", "-q", "-f", "qcow2", gone, str(ODD_SIZE))
    sp_nbd.sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", gone, "-F", "qcow2", orphan)
    os.unlink(gone)
    out = str(tmp_path / "inc.qcow2")
    with src.export(bitmap="b0") as uri:
        for parent, want in ((missing, "No such file"), (small, "virtual size"),
                             (raw, "not qcow2"), (orphan, "gone.qcow2")):
            line = failed(copy(bins, args=["--uri", uri, "--output", out, "--level", "inc",
                                           "--bitmap", "b0", "--parent", parent]))
            assert "parent image" in line and want in line, line
            nothing_left(out)


def test_disk_size_mismatch(bins, src, tmp_path):
    out = str(tmp_path / "vda.qcow2")
    with src.export() as uri:
        env = sp_nbd.copier_env(uri, "vda", out, size=ODD_SIZE + 512)
        line = failed(copy(bins, env=env))
    assert "STILLPOINT_DISK_SIZE" in line
    nothing_left(out)


def test_target_full(bins, src, tmp_path):
    """ENOSPC from the image's writer in the middle of the copy: exit 1, the reason,
    and neither the output nor the .part left on the small file system."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)], check=True)
    try:
        out = str(mnt / "vda.qcow2")
        with src.export() as uri:
            line = failed(copy(bins, args=["--uri", uri, "--output", out, "--disk", "vda"]))
        assert "No space left on device" in line
        nothing_left(out)
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_qemu_nbd_missing(bins, src, tmp_path):
    """qemu-nbd is needed for --compress only: the copier writes every other
    image itself."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "qemu-img").symlink_to("/usr/bin/qemu-img")
    out = str(tmp_path / "vda.qcow2")
    with src.export() as uri:
        line = failed(copy(bins, env={"PATH": str(bindir)},
                           args=["--uri", uri, "--output", out, "--compress"]))
        assert "qemu-nbd not found" in line
        nothing_left(out)
        done(copy(bins, env={"PATH": str(bindir)}, args=["--uri", uri, "--output", out]),
             "vda", out)
    assert_chain_ok(out, src.image, "qcow2")


def test_usage_errors(bins, tmp_path):
    out = str(tmp_path / "vda.qcow2")
    base = {"STILLPOINT_NBD_URI": "nbd+unix:///?socket=/nonexistent",
            "STILLPOINT_OUTPUT": out}
    cases = [
        ({"STILLPOINT_NBD_URI": ""}, [], "STILLPOINT_NBD_URI"),
        ({"STILLPOINT_LEVEL": "incremental"}, [], "STILLPOINT_LEVEL"),
        ({"STILLPOINT_LEVEL": "inc"}, [], "needs a bitmap"),
        ({}, ["--level", "inc", "--bitmap", "b"], "needs a parent"),
        ({}, ["--bogus"], "unknown option --bogus"),
        ({}, ["--request-size", "3000"], "--request-size"),
    ]
    for env, args, want in cases:
        line = failed(copy(bins, env={**base, **env}, args=args), rc=2)
        assert want in line, line
        nothing_left(out)


def test_source_read_error(bins, tmp_path):
    """The export fails reads (nbdkit's error filter): exit 1, no output."""
    sock = str(tmp_path / "k.sock")
    proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "--filter=error", "pattern", "16M",
                             "error-pread=EIO", "error-pread-rate=5%"])
    try:
        sp_nbd.wait_for_socket(sock, proc)
        out = str(tmp_path / "vda.qcow2")
        line = failed(copy(bins, args=["--uri", f"nbd+unix:///?socket={sock}",
                                       "--output", out, "--request-size", "64K"]))
        assert "from the export" in line and "Input/output error" in line
        nothing_left(out)
    finally:
        proc.terminate()
        proc.wait()


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ss_timers(port):
    """The timer field of `ss -o` per established connection with this
    port at one end, keyed by the local port."""
    out = subprocess.run(["ss", "-Htno", "state", "established", f"( sport = :{port} or "
                          f"dport = :{port} )"], capture_output=True, text=True, check=True)
    timers = {}
    for line in out.stdout.splitlines():
        f = line.split()
        local = int(f[2].rsplit(":", 1)[1])
        timers[local] = next((x for x in f if x.startswith("timer:")), "")
    return timers


def test_tcp_source_has_keepalive(bins, tmp_path):
    """A TCP source (transport = tcp: nbds://) gets TCP keepalive, so that a
    peer gone without a reset (host down, partition) fails the read within
    about a minute. The copier waits on a server that holds every read;
    `ss -o` shows the keepalive timer on the copier's connections (idle
    30 s, not the kernel's 2 h), and none on the server's side."""
    port = free_port()
    proc = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port),
                             "--filter=delay", "pattern", "16M", "rdelay=600"])
    copier = None
    try:
        deadline = time.monotonic() + 30
        while not ss_listening(port):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        out = str(tmp_path / "o" / "d.qcow2")
        copier = subprocess.Popen([bins.copy, "--uri", f"nbd://127.0.0.1:{port}/",
                                   "--output", out, "--connections", "1"],
                                  env={**os.environ, "STILLPOINT_STALL_TIMEOUT_S": "0"},
                                  stderr=subprocess.PIPE, text=True)
        timers = {}
        while time.monotonic() < deadline:
            timers = ss_timers(port)
            mine = [t for local, t in timers.items() if local != port]
            if mine and all(t.startswith("timer:(keepalive,") for t in mine):
                break
            assert copier.poll() is None, copier.communicate()
            time.sleep(0.2)
        print(f"ss -o: {timers}")
        mine = {local: t for local, t in timers.items() if local != port}
        assert mine and all(t.startswith("timer:(keepalive,") for t in mine.values()), timers
        for t in mine.values():  # timer:(keepalive,29sec,0): at most KEEP_IDLE
            left = t.split(",")[1]
            assert left.endswith("ms") or int(left.rstrip("sec")) <= 30, t
        assert not [t for local, t in timers.items() if local == port and "keepalive" in t]
    finally:
        if copier and copier.poll() is None:
            copier.terminate()
            copier.communicate(timeout=30)
        proc.terminate()
        proc.wait()


def ss_listening(port):
    out = subprocess.run(["ss", "-Htln", f"( sport = :{port} )"], capture_output=True,
                         text=True)
    return bool(out.stdout.strip())


@contextlib.contextmanager
def slow_source(tmp_path, size="16M"):
    """nbdkit answering each read after 100 ms: a copy that lasts seconds."""
    sock = str(tmp_path / "slow.sock")
    proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "--filter=delay", "pattern", size,
                             "rdelay=100ms"])
    try:
        sp_nbd.wait_for_socket(sock, proc)
        yield f"nbd+unix:///?socket={sock}"
    finally:
        proc.terminate()
        proc.wait()


SLOW = ["--requests", "2", "--connections", "1"]


def test_sigterm_removes_part(bins, tmp_path):
    out = str(tmp_path / "vda.qcow2")
    with slow_source(tmp_path) as uri:
        p = subprocess.Popen([bins.copy, "--uri", uri, "--output", out, *SLOW],
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not os.path.exists(out + ".part") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert p.poll() is None, "the copy ended before the signal"
        p.send_signal(signal.SIGTERM)
        err = p.communicate(timeout=30)[1]
    assert p.returncode == 1
    assert err.strip().splitlines() == ["stillpoint-copy: vda: error: interrupted by SIGTERM"]
    nothing_left(out)
    # qemu-nbd went with us.
    ps = subprocess.run(["pgrep", "-f", out], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


def test_progress_lines_when_not_a_tty(bins, tmp_path):
    out = str(tmp_path / "vda.qcow2")
    with slow_source(tmp_path) as uri:
        r = copy(bins, args=["--uri", uri, "--output", out, "--progress-interval", "0.5", *SLOW])
    done(r, "vda")
    lines = r.err.strip().splitlines()
    progress = [ln for ln in lines[:-1]]
    assert len(progress) >= 3, r.err
    for ln in progress:
        assert re.match(r"^stillpoint-copy: vda: \d+\.\d of 16\.0 MiB \(\d+%\), "
                        r"\d+\.\d MiB/s, ETA (\d+:\d\d|--:--)$", ln), ln
    # Done grows from line to line.
    done_mib = [float(ln.split(": ")[2].split(" ")[0]) for ln in progress]
    assert done_mib == sorted(done_mib) and done_mib[-1] > done_mib[0]
    assert "\r" not in r.err


def test_progress_live_on_a_tty(bins, tmp_path):
    out = str(tmp_path / "vda.qcow2")
    master, slave = pty.openpty()
    with slow_source(tmp_path, "8M") as uri:
        p = subprocess.Popen([bins.copy, "--uri", uri, "--output", out, *SLOW],
                             stderr=slave, stdout=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        p.wait(timeout=30)
    os.close(master)
    text = b"".join(chunks).decode()
    assert p.returncode == 0, text
    assert "\rstillpoint-copy: vda: " in text and "\x1b[K" in text and "ETA" in text
    # The live line is erased, then the summary ends the output on its own.
    tail = text.split("\x1b[K")[-1]
    assert tail.endswith("\r\n") and re.match(sp_nbd.DONE_RE, tail[:-2]), text


def test_help_and_man_page_tell_the_truth(bins):
    r = run([bins.copy, "--help"])
    assert r.rc == 0
    flags = set(re.findall(r"--[a-z][a-z-]+", r.out))
    assert {"--uri", "--bitmap", "--output", "--parent", "--level", "--compress",
            "--progress", "--disk", "--help", "--version"} <= flags
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    man = open(os.path.join(root, "docs", "man", "stillpoint-copy.1")).read()
    # The options the man page describes: the tags (.TP lines) of OPTIONS.
    section = man.split(".SH OPTIONS")[1].split("\n.SH ")[0].splitlines()
    tags = [section[i + 1].replace("\\-", "-") for i, ln in enumerate(section)
            if ln == ".TP"]
    man_flags = {f for t in tags for f in re.findall(r"--[a-z][a-z-]*[a-z]", t)}
    assert flags == man_flags, (flags ^ man_flags)
    for var in ("STILLPOINT_NBD_URI", "STILLPOINT_DISK", "STILLPOINT_DISK_SIZE",
                "STILLPOINT_LEVEL", "STILLPOINT_BITMAP", "STILLPOINT_OUTPUT",
                "STILLPOINT_PARENT_OUTPUT"):
        assert var in man and var in r.out
    assert run([bins.copy, "--version"]).out.startswith("stillpoint-copy ")


# -- the alternative copier the configuration documents ------------------------

def test_nbdcopy_alternatives_in_config_work(bins, src, tmp_path):
    """config/stillpoint.conf documents nbdcopy as a full-only copier; run
    the documented command lines through /bin/sh -c with the contract's
    environment, as the coordinator does, and check what they produce."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    conf = open(os.path.join(root, "config", "stillpoint.conf")).read()
    commands = re.findall(r"^#\s+copier = (nbdcopy.*|qemu-img.*)$", conf, re.M)
    assert len(commands) == 2, commands
    formats = []
    with src.export() as uri:
        for i, command in enumerate(commands):
            out = str(tmp_path / f"p{i}" / "disks" / "vda.qcow2")
            os.makedirs(os.path.dirname(out))
            env = sp_nbd.copier_env(uri, "vda", out, size=ODD_SIZE)
            r = run(["/bin/sh", "-c", command], env=env)
            assert r.rc == 0, r
            fmt = sp_nbd.info(out)["format"]
            formats.append(fmt)
            rc, text = sp_nbd.compare(src.image, out, fmt)
            assert rc == 0, text
    # The plain one writes raw data under the .qcow2 name, as the text says.
    assert formats == ["raw", "qcow2"]


def test_stalled_server_fails_within_stall_timeout(bins, tmp_path):
    """A server that stops answering reads (nbdkit's delay filter holds every
    read 600 s, as a stuck NFS disk or a partition would): the copier fails
    after STILLPOINT_STALL_TIMEOUT_S without progress, instead of hanging the
    run, and leaves no output behind."""
    sock = str(tmp_path / "k.sock")
    proc = subprocess.Popen(["nbdkit", "-U", sock, "-f", "--filter=delay", "sparse-random",
                             "16M", "seed=5", "percent=50", "runlength=102400", "rdelay=600"])
    try:
        sp_nbd.wait_for_socket(sock, proc)
        out = str(tmp_path / "o" / "d.qcow2")
        t0 = time.monotonic()
        r = copy(bins, env={"STILLPOINT_STALL_TIMEOUT_S": "2"},
                 args=["--uri", f"nbd+unix:///?socket={sock}", "--output", out], timeout=120)
        took = time.monotonic() - t0
        line = failed(r)
        assert "no progress for 2 s (stall_timeout_s)" in line, line
        # 2 s plus a generous margin for a loaded host; far below the 600 s hang.
        assert 2 <= took < 30, took
        print(f"stall detected after {took:.1f} s (stall_timeout_s = 2)")
        nothing_left(out)
    finally:
        proc.terminate()
        proc.wait()
