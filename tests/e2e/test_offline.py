"""Offline points: `stillpoint backup` of a shut-off VM (docs/design.md,
"Offline points"). The VM is started paused for the job and stopped again;
the chain runs on across online and offline points both ways.

One VM (TPM 2.0 + UEFI, two qcow2 disks and a raw one) for the module; the
tests run in order and build one chain: offline full, online incremental,
offline incremental, then a start during an offline backup.
"""
import hashlib
import os
import signal
import subprocess
import time

import pytest

import sp_points as spp
import sp_vm
from conftest import Bins, run

MiB = 1 << 20
DISKS = (("vda", "qcow2", 32 * MiB), ("vdc", "raw", 8 * MiB))


def tree_hashes(path):
    """{relative name: sha256} of a file or of every file below a directory."""
    if os.path.isfile(path):
        return {os.path.basename(path): spp.sha256(path)}
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if f == ".lock":
                continue
            full = os.path.join(root, f)
            out[os.path.relpath(full, path)] = spp.sha256(full)
    return out


class Chain:
    def __init__(self, vm, target):
        self.vm, self.target = vm, target
        self.ids = []
        self.nvram = None


@pytest.fixture(scope="module")
def chain(conn, confdir, tmp_path_factory):
    """A VM that has run once (so it has an NVRAM and a TPM state) and is
    shut off again."""
    vm = sp_vm.TestVM(conn, tag="offline", disks=DISKS)
    try:
        vm.start()
        nvram = vm.nvram_path
        vm.wait_settled(quiet_s=4.0)
        vm.dom.destroy()
        c = Chain(vm, tmp_path_factory.mktemp("offline") / "points")
        c.nvram = nvram
        yield c
    finally:
        vm.remove()


def offline_write(vm, target, pattern, offset, length):
    """A write into a shut-off VM's image, through QEMU's block layer (so the
    qcow2 image's persistent dirty bitmaps record it, as QEMU would)."""
    fmt = vm.formats[target]
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P 0x{pattern:02x} {offset} {length}",
                    vm.disks[target]], check=True, capture_output=True)


def state_hashes(c):
    return tree_hashes(c.nvram), tree_hashes(c.vm.tpm_dir)


def backup(bins, c, *args):
    return run([bins.stillpoint, "backup", c.vm.name, "--target", str(c.target), "--json",
                *args])


def check_point(bins, c, j, tmp_path, nvram, tpm):
    """The point verifies; each disk equals the source image now (the VM is
    off, or quiet); NVRAM and TPM equal the hashes given."""
    point = j["path"]
    v = run([bins.stillpoint, "verify", point])
    assert v.rc == 0, v
    for t in ("vda", "vdc"):
        src = tmp_path / f"{t}.now.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", c.vm.disks[t], str(src)],
                       check=True)
        rc, out = spp.compare(str(src), os.path.join(point, "disks", f"{t}.qcow2"))
        assert rc == 0, f"{j['id']} {t}: {out}"
    got_nv = tree_hashes(os.path.join(point, "nvram"))
    assert list(got_nv.values()) == list(nvram.values())
    got_tpm = tree_hashes(os.path.join(point, "tpm", "tpm2"))
    assert got_tpm == tpm, (got_tpm, tpm)


def test_offline_full(bins, chain, tmp_path):
    c = chain
    assert c.vm.state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
    offline_write(c.vm, "vda", 0x11, 1 * MiB, 1 * MiB)
    offline_write(c.vm, "vdc", 0x12, 2 * MiB, 1 * MiB)
    nvram, tpm = state_hashes(c)
    nv_stat = os.stat(c.nvram)
    r = backup(bins, c)
    assert r.rc == 0, r
    j = r.json()
    assert j["offline"] is True and j["level"] == "full"
    assert j["window"]["consistent"] is True and j["window"]["paused"] is False
    c.ids.append(j["id"])
    # Stopped again, and the VM's own files never touched.
    assert c.vm.state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
    assert state_hashes(c) == (nvram, tpm)
    assert os.stat(c.nvram).st_mtime_ns == nv_stat.st_mtime_ns
    assert not os.path.exists(f"/run/stillpoint/offline/{c.vm.uuid}")
    check_point(bins, c, j, tmp_path, nvram, tpm)
    assert j["id"] in sp_vm.checkpoints(c.vm.dom)


def test_online_inc_after_offline(bins, chain, tmp_path):
    """The checkpoint of an offline point serves the next online incremental."""
    c = chain
    assert c.ids, "needs test_offline_full"
    c.vm.start()
    try:
        c.vm.wait_settled(quiet_s=4.0)
        c.vm.write("vda", 0x21, 4 * MiB, 1 * MiB)
        r = backup(bins, c, "--level", "inc")
        assert r.rc == 0, r
        j = r.json()
        assert j["offline"] is False and j["level"] == "inc" and j["parent"] == c.ids[-1]
        assert {d["target"]: d["level"] for d in j["disks"]}["vda"] == "inc"
        assert c.vm.is_running()
        c.ids.append(j["id"])
        c.vm.dom.suspend()
        c.vm.wait_settled(quiet_s=1.0)
        nvram, tpm = state_hashes(c)
    finally:
        c.vm.dom.destroy()
    # OVMF writes NVRAM until its last moment: the point holds the state of
    # its window, which the files no longer are; only the disks compare.
    v = run([bins.stillpoint, "verify", j["path"]])
    assert v.rc == 0, v
    for t in ("vda", "vdc"):
        src = tmp_path / f"{t}.now.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", c.vm.disks[t], str(src)],
                       check=True)
        rc, out = spp.compare(str(src), os.path.join(j["path"], "disks", f"{t}.qcow2"))
        assert rc == 0, f"{t}: {out}"
    del nvram, tpm


def test_offline_inc_after_online(bins, chain, tmp_path):
    """The checkpoint of an online point serves the next offline incremental,
    and the writes made while the VM was off are in it."""
    c = chain
    assert len(c.ids) == 2, "needs the tests before"
    offline_write(c.vm, "vda", 0x31, 8 * MiB, 1 * MiB)
    nvram, tpm = state_hashes(c)
    r = backup(bins, c, "--level", "inc")
    assert r.rc == 0, r
    j = r.json()
    assert j["offline"] is True and j["level"] == "inc" and j["parent"] == c.ids[-1]
    vda = {d["target"]: d for d in j["disks"]}["vda"]
    assert vda["level"] == "inc"
    # Only what changed was copied: the 1 MiB written offline, not the disk.
    assert vda["bytes_written"] < 4 * MiB, vda
    c.ids.append(j["id"])
    assert c.vm.state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
    assert state_hashes(c) == (nvram, tpm)
    check_point(bins, c, j, tmp_path, nvram, tpm)


def test_backup_all_running_shut_off_and_skipped(bins, conn, tmp_path):
    """--all: a running VM gets an online point, a shut-off one an offline
    point, and one with offline = skip is left out; config show names the
    policy and where it comes from."""
    conf = tmp_path / "conf"
    (conf / "vm.d").mkdir(parents=True)
    (conf / "stillpoint.conf").write_text("[defaults]\nenabled = no\nmax_parallel_vms = 2\n"
                                          "tpm = optional\nnvram = optional\n")
    small = (("vda", "qcow2", 8 * MiB),)
    vms = [sp_vm.TestVM(conn, tag="offall", disks=small, tpm=False, efi=False)
           for _ in range(3)]
    try:
        vms[0].start()
        for vm in vms:
            (conf / "vm.d" / f"{vm.name}.conf").write_text("enabled = yes\n")
        (conf / "vm.d" / f"{vms[2].name}.conf").write_text("enabled = yes\noffline = skip\n")
        env = {"STILLPOINT_CONFDIR": str(conf)}
        r = run([bins.stillpoint, "config", "show", vms[2].name, "--json"], env=env)
        assert r.rc == 0, r
        assert "offline" in r.out and "skip" in r.out
        r = run([bins.stillpoint, "backup", "--all", "--json", "--target", str(tmp_path / "p")],
                env=env)
        assert r.rc == 0, r
        status = {v["domain"]: v for v in r.json()["vms"]}
        assert status[vms[0].name]["status"] == "ok"
        assert status[vms[0].name]["manifest"]["offline"] is False
        assert status[vms[1].name]["status"] == "ok"
        assert status[vms[1].name]["manifest"]["offline"] is True
        assert status[vms[2].name]["status"] == "skipped", status[vms[2].name]
        assert "offline = skip" in status[vms[2].name]["reason"], status[vms[2].name]
        assert vms[0].is_running()
        assert vms[1].state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
        assert vms[2].state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
    finally:
        for vm in vms:
            vm.remove()
