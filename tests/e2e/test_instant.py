"""`stillpoint restore --instant` of a tiny-guest point (issue 18).

The VM starts at once on qcow2 overlays backed by the point's chain (served
read-only by qemu-nbd), its own TPM and NVRAM from the point; the disks are
then copied underneath it (virDomainBlockCopy) and pivoted. Proven here:
the agent answers while the copy still runs; what the guest writes during
the copy is on the final image; afterwards nothing references the point,
the point verifies and its files (content, owner, mode) are unchanged, and
the TPM NV counter and EFI variable the VM sees are the point's. A copy
that fails halfway (the target image made immutable: QEMU's writes get
EPERM) leaves the VM running, and --resume finishes it.

The copy is throttled (--bandwidth 1, MiB/s) over ~40 MiB of data so that
it is still running when the guest boots; nothing here depends on speed.
"""
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import libvirt
import pytest

import sp_consistency as spc
import sp_guest
from conftest import run

NV_INDEX = 0x01500300 + secrets.randbelow(0x100)
VAR = "SpInstant" + secrets.token_hex(2)
GUID = "6c1f3a2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
RUN_ROOT = Path("/run/stillpoint/instant")
AGENT_BOUND_S = 300  # generous: TCG boot is 15-30 s, the host is shared


def point_files(point):
    """path -> (uid, gid, mode, sha256) of every file and dir of a point."""
    out = {}
    for p in sorted(Path(point).rglob("*")) + [Path(point)]:
        st = p.lstat()
        h = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p)] = (st.st_uid, st.st_gid, st.st_mode, h)
    return out


@pytest.fixture(scope="module")
def point(bins, guest_conn, confdir, tmp_path_factory):
    """A point of a tiny guest holding /data/before, ~40 MiB of data, the
    EFI variable VAR = 41 and NV counter NV_INDEX incremented once; the
    guest is removed afterwards (only the point is needed)."""
    target = tmp_path_factory.mktemp("instant-points")
    with sp_guest.make_tiny_guest(guest_conn, data_size="128M") as g:
        g.check("echo before-the-point > /data/before; "
                "dd if=/dev/urandom of=/data/fill bs=1M count=40 2>/dev/null; sync")
        g.check(f"gtool efivar-write {VAR} {GUID} 41")
        g.check(f"gtool nv-define {NV_INDEX:#x}")
        counter = int(g.check(f"gtool nv-inc {NV_INDEX:#x}").strip())
        p = spc.take_point(bins.stillpoint, g.name, target, "freeze", ("pause_max_ms=10000",))
    yield p.path, counter
    shutil.rmtree(target, ignore_errors=True)


@contextlib.contextmanager
def restored(conn):
    """A name and a disks directory for a restored VM; both always removed
    (the VM, its NVRAM, TPM state, leftover qemu-nbd servers, images)."""
    name = "sptest-instant-" + secrets.token_hex(4)
    disks = sp_guest.new_workdir("sptest-instant-")
    try:
        yield name, disks
    finally:
        for f in disks.iterdir():
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        # A connection of its own: another test may have restarted libvirtd.
        with contextlib.suppress(libvirt.libvirtError), contextlib.closing(
                sp_guest.connect()) as c:
            dom = c.lookupByName(name)
            uuid = dom.UUIDString()
            sp_guest.remove_domain(dom)
            for pid in (RUN_ROOT / uuid).glob("*.pid"):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid.read_text()), 15)
            shutil.rmtree(RUN_ROOT / uuid, ignore_errors=True)
        shutil.rmtree(disks, ignore_errors=True)


def start_instant(bins, pt, name, disks, *extra):
    return subprocess.Popen(
        [bins.stillpoint, "restore", "--instant", str(pt), "--name", name, "--disks-to",
         str(disks), "--trust-domain-xml", "--bandwidth", "1", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_agent(conn, name, proc, t0):
    """Seconds from t0 until the restored VM's agent answered."""
    while time.monotonic() - t0 < AGENT_BOUND_S:
        assert proc.poll() is None or proc.returncode == 0, proc.communicate()
        with contextlib.suppress(libvirt.libvirtError, sp_guest.AgentError):
            dom = conn.lookupByName(name)
            if dom.isActive():
                sp_guest.agent(dom, {"execute": "guest-ping"}, timeout=5)
                return dom, time.monotonic() - t0
        time.sleep(0.5)
    pytest.fail(f"the agent of {name} did not answer within {AGENT_BOUND_S} s")


def disk_source(dom, flags=0):
    import xml.etree.ElementTree as ET
    return ET.fromstring(dom.XMLDesc(flags)).find("devices/disk/source").get("file")


@pytest.mark.slow
def test_instant_restore(bins, guest_conn, point, tmp_path):
    pt, counter = point
    before = point_files(pt)
    with restored(guest_conn) as (name, disks):
        t0 = time.monotonic()
        proc = start_instant(bins, pt, name, disks)
        dom, agent_s = wait_agent(guest_conn, name, proc, t0)
        print(f"\ninstant restore: agent answered {agent_s:.1f} s after the command began")
        # The copy is still under way: the guest writes now, on the overlay.
        assert proc.poll() is None, proc.communicate()
        assert disk_source(dom) == str(disks / "vda.qcow2.overlay")
        sp_guest.guest_check(dom, "echo written-during-the-copy > /data/during; sync")
        assert proc.poll() is None, "the copy ended before the guest wrote: nothing proven"
        # The guest sees the point's TPM counter and EFI variable.
        assert int(sp_guest.guest_check(dom, f"gtool nv-read {NV_INDEX:#x}")) == counter
        assert int(sp_guest.guest_check(dom, f"gtool efivar-read {VAR} {GUID}")) == 41
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        done = json.loads(out)
        progress = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert progress and all(p["event"] == "progress" for p in progress), err
        assert any(p["eta_s"] is not None for p in progress), err
        final = disks / "vda.qcow2"
        assert done["disks"] == [{"target": "vda", "path": str(final), "format": "qcow2"}]
        assert done["started_after_s"] <= agent_s

        # Pivoted: live and persistent definitions on the final image, no
        # overlay, no server, nothing that names the point or NBD.
        assert disk_source(dom) == str(final)
        assert disk_source(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == str(final)
        assert sorted(f.name for f in disks.iterdir()) == ["vda.qcow2"]
        assert not (RUN_ROOT / dom.UUIDString()).exists()
        chain = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                                str(final)], capture_output=True, text=True, check=True).stdout
        assert [i.get("backing-filename") for i in json.loads(chain)] == [None]
        assert str(pt) not in chain and "nbd" not in chain

        # What the guest wrote during the copy is on the final image.
        sp_guest.guest_check(dom, "sync")
        assert sp_guest.guest_check(dom, "cat /data/during") == "written-during-the-copy\n"
        dom.destroy()
        assert sp_guest.read_guest_file(final, "/during") == b"written-during-the-copy\n"
        assert sp_guest.read_guest_file(final, "/before") == b"before-the-point\n"

    # The point: unchanged (content, owner, mode) and still verifying.
    assert point_files(pt) == before
    r = run([bins.stillpoint, "verify", str(pt)])
    assert r.rc == 0, r


@pytest.mark.slow
def test_failed_copy_keeps_running_and_resumes(bins, guest_conn, point):
    pt, _ = point
    before = point_files(pt)
    with restored(guest_conn) as (name, disks):
        proc = start_instant(bins, pt, name, disks)
        final = disks / "vda.qcow2"
        deadline = time.monotonic() + AGENT_BOUND_S
        while not (final.exists() and final.stat().st_size > (2 << 20)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        # Halfway: QEMU can no longer write the target.
        subprocess.run(["chattr", "+i", str(final)], check=True)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, err
        assert f"stillpoint restore --instant --resume {name}" in err, err
        dom = guest_conn.lookupByName(name)
        assert dom.isActive()
        assert disk_source(dom) == str(disks / "vda.qcow2.overlay")
        sp_guest.wait_for_agent(dom)
        sp_guest.guest_check(dom, "echo after-the-failure > /data/after; sync")

        subprocess.run(["chattr", "-i", str(final)], check=True)
        r = run([bins.stillpoint, "restore", "--instant", "--resume", name])
        assert r.rc == 0, r
        assert "switched over" in r.out, r
        assert disk_source(dom) == str(final)
        assert disk_source(dom, libvirt.VIR_DOMAIN_XML_INACTIVE) == str(final)
        assert sorted(f.name for f in disks.iterdir()) == ["vda.qcow2"]
        assert sp_guest.guest_check(dom, "cat /data/after") == "after-the-failure\n"
        r = run([bins.stillpoint, "restore", "--instant", "--resume", name])
        assert r.rc == 3 and "nothing to resume" in r.err, r
    assert point_files(pt) == before


def test_instant_usage(bins, tmp_path):
    r = run([bins.stillpoint, "restore", "--instant", str(tmp_path), "--name", "x"])
    assert r.rc == 2 and "--disks-to" in r.err, r
    r = run([bins.stillpoint, "restore", "--instant", str(tmp_path), "--name", "x",
             "--disks-to", str(tmp_path), "--replace"])
    assert r.rc == 2 and "--replace" in r.err, r
    r = run([bins.stillpoint, "restore", "--instant", "--resume", "sptest-instant-none-here"])
    assert r.rc != 0 and "sptest-instant-none-here" in r.err, r
