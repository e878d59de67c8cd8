"""Policies, locks, `backup --all`, and retention: the policy's precedence,
one run per VM, every enabled VM at once, and pruning that never breaks a
chain."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import libvirt
import pytest

import sp_points as spp
import sp_vm
from conftest import Bins, run

MiB = 1 << 20


def write_conf(confdir, text, vm=None):
    path = confdir / "vm.d" / f"{vm}.conf" if vm else confdir / "stillpoint.conf"
    path.write_text(text)
    return path


@pytest.fixture
def conf(tmp_path):
    """A configuration directory of this test's own."""
    d = tmp_path / "conf"
    (d / "vm.d").mkdir(parents=True)
    return d


def test_precedence_shown_by_config_show(bins, conf, tmp_path):
    g = write_conf(conf, "[defaults]\nkeep = 3\nparallel = 2\nlevel = diff\n[hook]\nkeep_snapshots = 9\n")
    v = write_conf(conf, "keep = 4\nparallel = 3\n", vm="vm1")
    extra = tmp_path / "extra.conf"
    extra.write_text("[defaults]\nparallel = 5\n")
    r = run([bins.stillpoint, "config", "show", "vm1", "--json", "--config", str(extra),
             "--set", "level=inc"], env={"STILLPOINT_CONFDIR": str(conf)})
    assert r.rc == 0, r
    j = r.json()
    assert j["pause_max_ms"] == {"section": "defaults", "value": "2000", "source": "built-in default"}
    assert j["keep_snapshots"]["value"] == "9" and j["keep_snapshots"]["source"] == f"{g}:6"
    assert j["keep"]["value"] == "4" and j["keep"]["source"] == f"{v}:1"
    assert j["parallel"]["value"] == "5" and j["parallel"]["source"] == f"{extra}:2"
    assert j["level"]["value"] == "inc" and j["level"]["source"] == "--set"
    # Another VM sees the global file only.
    r = run([bins.stillpoint, "config", "show", "vm2"], env={"STILLPOINT_CONFDIR": str(conf)})
    assert r.rc == 0, r
    assert f"keep = 3" in r.out and f"{g}:2" in r.out
    # A bad vm.d file is exit 2 naming file, line and key.
    write_conf(conf, "keep = many\n", vm="vm3")
    r = run([bins.stillpoint, "config", "show", "vm3"], env={"STILLPOINT_CONFDIR": str(conf)})
    assert r.rc == 2 and "vm3.conf:1: key 'keep'" in r.err, r


def test_disabled_vm_is_refused(bins, shared_vm, conf, tmp_path):
    write_conf(conf, "enabled = no\n", vm=shared_vm.name)
    r = run([bins.stillpoint, "backup", shared_vm.name, "--target", str(tmp_path)],
            env={"STILLPOINT_CONFDIR": str(conf)})
    assert r.rc == 3 and "disabled by policy" in r.err, r


def test_two_backups_of_one_vm(bins, shared_vm, tmp_path):
    """The second run names the first and exits 1; the first completes."""
    slow = f'sleep 5; exec "{Bins.copy}"'
    p = subprocess.Popen([bins.stillpoint, "backup", shared_vm.name, "--target",
                          str(tmp_path / "a"), "--set", f"copier={slow}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not spp.points(tmp_path / "a" / shared_vm.name)[1]:
            time.sleep(0.05)
        r = run([bins.stillpoint, "backup", shared_vm.name, "--target", str(tmp_path / "b")])
        assert r.rc == 1, r
        assert f"{shared_vm.name} is busy" in r.err
        assert f"backup of {shared_vm.name} by pid {p.pid}" in r.err
        assert not os.path.exists(tmp_path / "b" / shared_vm.name)
    finally:
        out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err


def test_backup_all(bins, conn, conf, tmp_path):
    """Three enabled VMs, one of them with a failing copier, and the host's
    other VMs disabled by the global policy: two points, one failure, exit 1."""
    write_conf(conf, "[defaults]\nenabled = no\nmax_parallel_vms = 2\n")
    vms = [sp_vm.TestVM(conn, tag="all", disks=(("vda", "qcow2", 16 * MiB),)) for _ in range(3)]
    try:
        for vm in vms:
            vm.start()
            write_conf(conf, "enabled = yes\n", vm=vm.name)
        write_conf(conf, "enabled = yes\ncopier = exit 1\n", vm=vms[1].name)
        r = run([bins.stillpoint, "backup", "--all", "--json", "--target", str(tmp_path)],
                env={"STILLPOINT_CONFDIR": str(conf)})
        assert r.rc == 1, r
        j = r.json()
        assert j["ok"] is False
        status = {v["domain"]: v for v in j["vms"]}
        assert status[vms[0].name]["status"] == "ok"
        assert status[vms[2].name]["status"] == "ok"
        assert status[vms[1].name]["status"] == "failed" and status[vms[1].name]["exit"] == 1
        for vm in (vms[0], vms[2]):
            done, _ = spp.points(tmp_path / vm.name)
            assert len(done) == 1
            assert status[vm.name]["point"] == str(tmp_path / vm.name / done[0])
        assert spp.points(tmp_path / vms[1].name)[0] == []
        others = [v for v in j["vms"] if v["domain"] not in {vm.name for vm in vms}]
        assert all(v["status"] == "skipped" for v in others)
        for vm in vms:
            assert vm.is_running()
    finally:
        for vm in vms:
            vm.remove()


def test_retention_keep_4_full_every_3(bins, conn, conf, tmp_path):
    """10 points with keep = 4, full_every = 3 (prune runs after each point):
    4 remain, each restores to the disk it was taken from, and libvirt keeps
    only the checkpoints the next point needs."""
    write_conf(conf, "[defaults]\nkeep = 4\nfull_every = 3\n")
    env = {"STILLPOINT_CONFDIR": str(conf)}
    vm = sp_vm.TestVM(conn, tag="ret", disks=(("vda", "qcow2", 32 * MiB),
                                             ("vdb", "qcow2", 16 * MiB)))
    work = tempfile.mkdtemp(prefix="sptest-ret-", dir="/var/tmp")
    os.chmod(work, 0o711)
    target = tmp_path / "points"
    expected = {}
    try:
        vm.start()
        for i in range(10):
            vm.write("vda", 0x10 + i, i * MiB, 256 * 1024)
            vm.write("vdb", 0x40 + i, (i % 4) * MiB, 64 * 1024)
            r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json"],
                    env=env)
            assert r.rc == 0, r
            assert "cannot delete checkpoint" not in r.err, r
            pid = r.json()["id"]
            vm.dom.suspend()
            try:
                expected[pid] = {t: vm.snapshot_disk(t, os.path.join(work, f"{pid}-{t}.raw"))
                                 for t in vm.disks}
            finally:
                vm.dom.resume()
        done, partial = spp.points(target / vm.name)
        assert len(done) == 4 and partial == []
        levels = [spp.manifest(target / vm.name / p)["level"] for p in done]
        # 1F 2i 3i 4i 5F 6i 7i 8i 9F 10i: keeps 7..10, 7 merged into a full.
        assert levels == ["full", "inc", "full", "inc"], levels
        assert any("merged by prune" in w
                   for w in spp.manifest(target / vm.name / done[0])["warnings"])
        for pid in done:
            point = str(target / vm.name / pid)
            assert run([bins.stillpoint, "verify", point]).rc == 0
            name = sp_vm.unique_name("retr")
            dest = os.path.join(work, name)
            os.mkdir(dest)
            os.chmod(dest, 0o711)  # QEMU opens the disks here (run-all's umask is 077)
            r = run([bins.stillpoint, "restore", point, "--name", name, "--disks-to", dest,
                     "--define"])
            try:
                assert r.rc == 0, r
                for t in vm.disks:
                    rc, out = spp.compare(expected[pid][t], os.path.join(dest, f"{t}.qcow2"))
                    assert rc == 0, f"{pid} {t}: {out}"
            finally:
                d = conn.lookupByName(name)
                d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
        # What the next point needs: the checkpoints of the newest point (inc) and of
        # its chain, 10 and its full 9 (diff, and what a later prune merges).
        assert sp_vm.checkpoints(vm.dom) == sorted([done[2], done[3]])
        # The chain goes on: an incremental after pruning.
        r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json",
                 "--level", "inc"], env=env)
        assert r.rc == 0 and r.json()["parent"] == done[3], r
    finally:
        vm.remove()
        shutil.rmtree(work, ignore_errors=True)


def test_retention_merges_keep_the_diff_base(bins, conn, conf, tmp_path):
    """keep = 3, full_every = 3: the prune after point 3 must not delete point
    2's checkpoint, because the prune after point 4 merges point 2 into the
    chain's full and the next diff starts from it. A diff asked for then is a
    diff (it used to become a full copy, exit 0, blaming the checkpoint's
    bitmap). The merged point names no parent checkpoint."""
    write_conf(conf, "[defaults]\nkeep = 3\nfull_every = 3\n")
    env = {"STILLPOINT_CONFDIR": str(conf)}
    vm = sp_vm.TestVM(conn, tag="house-ret", disks=(("vda", "qcow2", 16 * MiB),))
    target = tmp_path / "points"
    try:
        vm.start()
        for i in range(4):  # 1F 2i 3i 4i; the prune after 4 merges 2
            vm.write("vda", 0x10 + i, i * MiB, 64 * 1024)
            r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json"],
                    env=env)
            assert r.rc == 0, r
        done, _ = spp.points(target / vm.name)
        assert len(done) == 3
        merged = spp.manifest(target / vm.name / done[0])
        assert merged["level"] == "full" and merged["parent_checkpoint"] is None, merged
        assert sp_vm.checkpoints(vm.dom) == sorted(done)
        vm.write("vda", 0x20, 0, 64 * 1024)
        r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json",
                 "--level", "diff"], env=env)
        assert r.rc == 0, r
        j = r.json()
        assert j["level"] == "diff" and j["parent"] == done[0], (j, r.err)
        assert "FULL point instead" not in r.err, r.err
        assert run([bins.stillpoint, "verify", str(target / vm.name / j["id"])]).rc == 0
    finally:
        vm.remove()


def test_prune_dry_run_and_partials(bins, shared_vm, conf, tmp_path):
    env = {"STILLPOINT_CONFDIR": str(conf)}
    target = tmp_path / "points"
    for _ in range(3):
        r = run([bins.stillpoint, "backup", shared_vm.name, "--target", str(target)], env=env)
        assert r.rc == 0, r
    r = run([bins.stillpoint, "backup", shared_vm.name, "--target", str(target), "--set",
             "copier=exit 1"], env=env)
    assert r.rc == 1
    before = spp.points(target / shared_vm.name)
    assert len(before[0]) == 3 and len(before[1]) == 1
    r = run([bins.stillpoint, "prune", shared_vm.name, "--target", str(target), "--dry-run",
             "--json", "--set", "keep=1"], env=env)
    assert r.rc == 0, r
    actions = r.json()[0]["actions"]
    assert spp.points(target / shared_vm.name) == before  # nothing touched
    kinds = [(a["action"], a.get("point")) for a in actions]
    assert ("remove", before[1][0] + ".partial") in kinds
    assert ("merge", before[0][2]) in kinds
    assert ("remove", before[0][0]) in kinds and ("remove", before[0][1]) in kinds
    r = run([bins.stillpoint, "prune", shared_vm.name, "--target", str(target),
             "--set", "keep=1"], env=env)
    assert r.rc == 0, r
    after = spp.points(target / shared_vm.name)
    assert after == ([before[0][2]], [])
    assert run([bins.stillpoint, "verify", str(target / shared_vm.name / after[0][0])]).rc == 0
