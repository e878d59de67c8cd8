"""Offline points: `stillpoint backup` of a shut-off VM (docs/design.md,
"Offline points"). The VM is started paused for the job and stopped again;
the chain runs on across online and offline points both ways.

One VM (TPM 2.0 + UEFI, two qcow2 disks and a raw one) for the module; the
tests run in order and build one chain: offline full, online incremental,
offline incremental, then a start during an offline backup.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import sp_guest
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
    """An offline full point verifies, equals the disks and the VM's NVRAM
    and TPM, leaves them untouched, and restores."""
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
    restore_and_start(bins, c, j["path"], tmp_path, nvram, tpm)


def test_online_inc_after_offline(bins, chain, tmp_path):
    """The checkpoint of an offline point serves the next online incremental,
    which verifies, equals the disks, and restores (full + incremental)."""
    c = chain
    assert c.ids, "needs test_offline_full"
    c.vm.start()
    try:
        c.vm.wait_settled(quiet_s=4.0)
        c.vm.write("vda", 0x21, 4 * MiB, 1 * MiB)
        before = state_hashes(c)
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
    # OVMF may write NVRAM until its last moment: the point holds the state
    # of its window, which the files may no longer be (compared below only
    # when they did not change around the point).
    v = run([bins.stillpoint, "verify", j["path"]])
    assert v.rc == 0, v
    for t in ("vda", "vdc"):
        src = tmp_path / f"{t}.now.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", c.vm.disks[t], str(src)],
                       check=True)
        rc, out = spp.compare(str(src), os.path.join(j["path"], "disks", f"{t}.qcow2"))
        assert rc == 0, f"{t}: {out}"
    point_nv = tree_hashes(os.path.join(j["path"], "nvram"))
    point_tpm = tree_hashes(os.path.join(j["path"], "tpm", "tpm2"))
    if before == (nvram, tpm):
        # The firmware wrote nothing from before the point to after it (it
        # does not always settle that early): then the point holds the files.
        assert list(point_nv.values()) == list(nvram.values())
        assert point_tpm == tpm
    restore_and_start(bins, c, j["path"], tmp_path, point_nv, point_tpm)


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
    restore_and_start(bins, c, j["path"], tmp_path, nvram, tpm)


def restore_and_start(bins, c, point, tmp_path, nvram, tpm):
    """An offline point restores like any other: a new domain whose disks
    equal the source images now, whose TPM and NVRAM are the point's (as the
    shut-off VM's were), and whose firmware starts on them."""
    name = sp_vm.unique_name("offrs")
    disks = tempfile.mkdtemp(prefix=f"{name}-", dir="/var/tmp")
    os.chmod(disks, 0o711)
    conn = c.vm.dom.connect()
    try:
        r = run([bins.stillpoint, "restore", point, "--name", name, "--disks-to", disks,
                 "--define", "--json"])
        assert r.rc == 0, r
        j = r.json()
        for d in j["disks"]:
            src = tmp_path / f"{d['target']}.now.raw"
            rc, out = spp.compare(str(src), d["path"])
            assert rc == 0, f"restored {d['target']}: {out}"
        dom = conn.lookupByName(name)
        restored_tpm = tree_hashes(f"/var/lib/libvirt/swtpm/{dom.UUIDString()}/tpm2")
        assert restored_tpm == tpm, (restored_tpm, tpm)
        xml = dom.XMLDesc(sp_vm.libvirt.VIR_DOMAIN_XML_INACTIVE)
        nv_path = xml.split("<nvram")[1].split(">", 1)[1].split("<")[0].strip()
        assert list(tree_hashes(nv_path).values()) == list(nvram.values())
        dom.create()
        time.sleep(3)   # OVMF runs under TCG with the restored TPM and NVRAM
        assert dom.state()[0] == sp_vm.libvirt.VIR_DOMAIN_RUNNING
    finally:
        with_dom = [d for d in conn.listAllDomains() if d.name() == name]
        for d in with_dom:
            sp_guest.remove_domain(d)
        shutil.rmtree(disks, ignore_errors=True)


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
        assert r.rc == 0, [v for v in json.loads(r.out)["vms"] if "offall" in v["domain"]]
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


def slow_copier(seconds):
    return f'sleep {seconds}; exec "{Bins.copy}"'


def wait_state(vm, state, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if vm.state() == state:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{vm.name} never reached state {state} (now {vm.state()})")


def test_start_during_offline_backup(bins, chain, tmp_path):
    """`virsh start` during an offline backup fails and says so; the VM's
    title says what to do; `virsh resume` runs the VM at once, the backup
    completes from the instant of the paused start and leaves the VM running;
    the chain goes on with an online incremental."""
    c = chain
    assert len(c.ids) == 3, "needs the tests before"
    offline_write(c.vm, "vda", 0x41, 12 * MiB, 1 * MiB)
    at_start = tmp_path / "vda.at-start.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", c.vm.disks["vda"], str(at_start)],
                   check=True)
    p = subprocess.Popen([bins.stillpoint, "backup", c.vm.name, "--target", str(c.target),
                          "--json", "--level", "inc", "--set", f"copier={slow_copier(5)}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_state(c.vm, sp_vm.libvirt.VIR_DOMAIN_PAUSED)
        s = sp_vm.virsh("start", c.vm.name, check=False)
        assert s.returncode != 0 and "already" in s.stderr, s
        # The title follows the start by a moment.
        deadline = time.time() + 10
        while time.time() < deadline:
            t = sp_vm.virsh("list", "--title", check=False).stdout
            if "offline backup running" in t:
                break
            time.sleep(0.2)
        assert "offline backup running" in t and "virsh resume" in t, t
        sp_vm.virsh("resume", c.vm.name)
        assert c.vm.is_running()
    finally:
        out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "left running" in err
    j = json.loads(out)
    assert j["offline"] is True and j["level"] == "inc" and j["parent"] == c.ids[-1]
    c.ids.append(j["id"])
    assert c.vm.is_running()
    assert run([bins.stillpoint, "verify", j["path"]]).rc == 0
    rc, out = spp.compare(str(at_start), os.path.join(j["path"], "disks", "vda.qcow2"))
    assert rc == 0, out
    try:
        c.vm.write("vda", 0x42, 16 * MiB, 1 * MiB)
        r = backup(bins, c, "--level", "inc")
        assert r.rc == 0, r
        j = r.json()
        assert j["offline"] is False and j["parent"] == c.ids[-1]
        c.ids.append(j["id"])
    finally:
        c.vm.dom.destroy()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_signal_during_offline_backup(bins, chain, how):
    """SIGTERM: the coordinator stops the VM again; kill -9: the guardian
    does. Either way no checkpoint of the failed point stays, and the next
    point still builds on the chain."""
    c = chain
    assert c.vm.state() == sp_vm.libvirt.VIR_DOMAIN_SHUTOFF
    before = sp_vm.checkpoints(c.vm.dom)
    p = subprocess.Popen([bins.stillpoint, "backup", c.vm.name, "--target", str(c.target),
                          "--set", f"copier={slow_copier(30)}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_state(c.vm, sp_vm.libvirt.VIR_DOMAIN_PAUSED)
        time.sleep(1.0)  # the job has begun: the copier sleeps
        p.send_signal(getattr(signal, how))
    finally:
        p.communicate(timeout=120)
    assert p.returncode != 0
    wait_state(c.vm, sp_vm.libvirt.VIR_DOMAIN_SHUTOFF, timeout=30)
    deadline = time.time() + 20
    while sp_vm.checkpoints(c.vm.dom) != before and time.time() < deadline:
        time.sleep(0.2)
    assert sp_vm.checkpoints(c.vm.dom) == before
    assert not os.path.exists(f"/run/stillpoint/offline/{c.vm.uuid}")


def test_hook_ignores_the_offline_backups_start_and_stop(bins, conn, confdir, tmp_path):
    """With the hook installed: the paused start and the stop of an offline
    backup are not the VM's own. A TPM state changed while the VM was off is
    neither warned about nor snapshotted at them; the VM's next own stop
    snapshots it as usual."""
    from sp_hooktest import HookBed
    import sp_tpm
    bed = HookBed(bins, tmp_path / "bed")
    vm = sp_vm.TestVM(conn, tag="offhook", disks=(("vda", "qcow2", 8 * MiB),))
    try:
        bed.policy(vm.name, snapshot_on_stop="yes", recover_tpm="auto")
        bed.install()
        vm.start(paused=True)
        vm.dom.destroy()
        assert len(bed.snapshots(vm.uuid)) == 1
        with sp_tpm.SwtpmOn(vm.tpm_dir, copy=False) as tpm:  # a change while off
            tpm.nv_define_ordinary(0x01500043, 8)
            tpm.nv_write(0x01500043, b"offline!")
        since = bed.log_size()
        r = run([bins.stillpoint, "backup", vm.name, "--target", str(tmp_path / "p"), "--json"])
        assert r.rc == 0, r
        assert r.json()["offline"] is True
        lines = bed.log(vm.name, since)
        assert any("started paused for an offline backup" in l for l in lines), lines
        assert any("stopped after an offline backup: no snapshot" in l for l in lines), lines
        assert not any("differs" in l or "snapshot 2" in l for l in lines), lines
        assert len(bed.snapshots(vm.uuid)) == 1
        # The VM's own start and stop: the hook works as before.
        since = bed.log_size()
        vm.start(paused=True)
        vm.dom.destroy()
        lines = bed.log(vm.name, since)
        assert any("differs from snapshot" in l for l in lines), lines
        assert len(bed.snapshots(vm.uuid)) == 2
    finally:
        bed.uninstall()
        vm.remove()


def test_backup_on_stop(bins, conn, confdir, tmp_path):
    """backup_on_stop: the VM stops; the hook returns within its bound (the
    stop call returns), and within a bounded time an offline point exists
    that equals the disk after the stop. A start right after the next stop
    is not held up, and no point is taken of the running VM."""
    from sp_hooktest import HookBed
    bed = HookBed(bins, tmp_path / "bed")
    target = tmp_path / "p"
    vm = sp_vm.TestVM(conn, tag="offstop", disks=(("vda", "qcow2", 16 * MiB),))
    try:
        with open(os.path.join(bed.conf, "vm.d", f"{vm.name}.conf"), "w") as f:
            f.write(f"[defaults]\ntarget = {target}\n[hook]\nsnapshot_on_stop = yes\n"
                    f"backup_on_stop = yes\nstillpoint_binary = {bins.stillpoint}\n")
        bed.install()
        vm.start()
        vm.wait_settled(quiet_s=4.0)
        vm.write("vda", 0x51, 2 * MiB, 1 * MiB)
        since = bed.log_size()
        vm.dom.destroy()
        # The hook returned within its bound: its supervisor says so otherwise.
        lines = bed.log(vm.name, since)
        assert any("backup_on_stop: `" in l and "handed off" in l for l in lines), lines
        assert not any("abandoned after" in l for l in lines), lines
        after_stop = tmp_path / "vda.after-stop.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", vm.disks["vda"],
                        str(after_stop)], check=True)
        deadline = time.time() + 120
        done = []
        while time.time() < deadline and not done:
            done, _ = spp.points(target / vm.name)
            time.sleep(0.5)
        assert done, "no point within 120 s of the stop"
        point = target / vm.name / done[0]
        assert spp.manifest(point)["offline"] is True
        assert run([bins.stillpoint, "verify", str(point)]).rc == 0
        rc, out = spp.compare(str(after_stop), str(point / "disks" / "vda.qcow2"))
        assert rc == 0, out
        wait_state(vm, sp_vm.libvirt.VIR_DOMAIN_SHUTOFF, timeout=30)
        # The next stop, and a start right after it: not held up, left alone.
        vm.start()
        since = bed.log_size()
        vm.dom.destroy()
        s = sp_vm.virsh("start", vm.name, check=False)
        assert s.returncode == 0, s
        wait_pending_run_ended(vm.uuid)  # it looked, and refused the running VM
        assert any("handed off through" in l for l in bed.log(vm.name, since))
        assert vm.is_running()
        assert spp.points(target / vm.name)[0] == done
    finally:
        bed.uninstall()
        vm.remove()
        try:  # the rate limit's lock file
            os.unlink(f"/run/stillpoint/offline/{vm.uuid}.pending")
        except FileNotFoundError:
            pass


def wait_pending_run_ended(uuid, timeout=180):
    """Until the detached run of backup_on_stop has ended: it holds the VM's
    pending lock to its end."""
    import fcntl
    path = f"/run/stillpoint/offline/{uuid}.pending"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.2)
        finally:
            os.close(fd)
    raise TimeoutError(f"the backup_on_stop run of {uuid} did not end in {timeout} s")


def guest_shutdown(g):
    """The guest shuts itself down: qemu-ga's guest-shutdown runs its
    /sbin/shutdown, busybox init unmounts /data and powers off."""
    g.dom.shutdownFlags(sp_vm.libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
    deadline = time.time() + 120
    while g.dom.isActive():
        assert time.time() < deadline, f"{g.name} did not shut itself down in 120 s"
        time.sleep(0.1)


@pytest.mark.slow
def test_backup_on_stop_after_guest_shutdown(bins, tiny_guest, tmp_path):
    """backup_on_stop with a real guest: the tiny guest shuts itself down
    (guest agent); the hook returns within its bound (its wall time as
    libvirt waited for it); within a bounded time an offline point exists
    that equals the disk after the shutdown and holds the file written
    before it. Then the guest is started, shuts down again and is started
    at once: the start is not held up, the pending backup yields (exit 3,
    no point), the guest runs, and an online incremental continues the chain
    from the offline point. (Shares the session's guest: leaves it running
    with its agent answering, and removes the checkpoints it made.)"""
    from sp_hooktest import HookBed
    from sp_vm import libvirt
    g = tiny_guest
    bed = HookBed(bins, tmp_path / "bed")
    target = tmp_path / "p"
    with open(os.path.join(bed.conf, "vm.d", f"{g.name}.conf"), "w") as f:
        f.write(f"[defaults]\ntarget = {target}\n[hook]\nsnapshot_on_stop = yes\n"
                f"backup_on_stop = yes\nstillpoint_binary = {bins.stillpoint}\n")
    before = set(sp_vm.checkpoints(g.dom))
    token = os.urandom(8).hex()
    try:
        bed.install()
        g.check(f"echo {token} > /data/backup-on-stop && sync")
        since = bed.log_size()
        guest_shutdown(g)
        stopped = time.time()
        after_stop = tmp_path / "data.after-stop.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(g.data_disk),
                        str(after_stop)], check=True)
        done = []
        while time.time() < stopped + 180 and not done:
            done, _ = spp.points(target / g.name)
            time.sleep(0.5)
        assert done, f"no point within 180 s of the guest's shutdown: {bed.log(g.name, since)}"
        lines = bed.log(g.name, since)
        assert any("handed off through" in l for l in lines), lines
        assert not any("abandoned after" in l for l in lines), lines
        took = bed.returned_ms(g.name, "release end", since)
        assert took and max(took) < 2000 + 3000, (took, lines)  # HOOK_BUDGET_MS + a busy host
        point = target / g.name / done[0]
        m = spp.manifest(point)
        assert m["offline"] is True, m
        wait_pending_run_ended(g.uuid)
        assert not g.dom.isActive()
        assert run([bins.stillpoint, "verify", str(point)]).rc == 0
        disk = point / "disks" / "vda.qcow2"
        rc, out = spp.compare(str(after_stop), str(disk))
        assert rc == 0, out
        assert sp_guest.read_guest_file(disk, "/backup-on-stop").decode().strip() == token

        # A start right after the next shutdown: not held up, left alone.
        sp_guest.start_guest(g)
        since = bed.log_size()
        guest_shutdown(g)
        g.dom.create()
        assert g.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        wait_pending_run_ended(g.uuid)
        assert any("handed off through" in l for l in bed.log(g.name, since))
        g.boot_seconds = sp_guest.wait_for_agent(g.dom)
        assert g.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert spp.points(target / g.name)[0] == done
        # The chain goes on from the offline point.
        r = run([bins.stillpoint, "backup", g.name, "--level", "inc", "--json"],
                env=bed.env)
        assert r.rc == 0, r
        j = r.json()
        assert j["offline"] is False and j["level"] == "inc" and j["parent"] == done[0], j
    finally:
        bed.uninstall()
        wait_pending_run_ended(g.uuid)
        if not g.dom.isActive():
            sp_guest.start_guest(g)
        for name in set(sp_vm.checkpoints(g.dom)) - before:
            g.dom.checkpointLookupByName(name).delete()
        try:
            os.unlink(f"/run/stillpoint/offline/{g.uuid}.pending")
        except FileNotFoundError:
            pass


def test_backup_on_stop_one_pending_run_per_vm(bins, tmp_path):
    """The hand-off's rate limit, with the hook run directly (no libvirt): a
    second stop while the first hand-off is pending hands nothing off; once
    it ended, the next stop hands off again."""
    uuid = "0ff1ce00-5eed-4a11-8b0b-000000000017"
    conf = tmp_path / "conf"
    (conf / "vm.d").mkdir(parents=True)
    ran = tmp_path / "ran"
    fake = tmp_path / "fake-stillpoint"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\nsleep 3\n")
    fake.chmod(0o755)
    (conf / "stillpoint.conf").write_text(
        f"[hook]\nsnapshot_on_stop = no\nstate_dir = {tmp_path / 'state'}\n"
        f"backup_on_stop = yes\nstillpoint_binary = {fake}\n")
    xml = (f"<domain type='qemu'><name>sptest-pending</name><uuid>{uuid}</uuid>"
           "<memory>1</memory><os><type>hvm</type></os><devices/></domain>")
    env = {"STILLPOINT_CONFDIR": str(conf)}
    pending = f"/run/stillpoint/offline/{uuid}.pending"
    try:
        hook = [bins.hook, "sptest-pending", "release", "end", "-"]
        first = run(hook, env=env, input=xml)
        assert first.rc == 0 and "handed off" in first.err, first
        # No systemd on this host (no /run/systemd/system): the double fork.
        if not os.path.isdir("/run/systemd/system"):
            assert "handed off through a double fork" in first.err, first
        second = run(hook, env=env, input=xml)
        assert second.rc == 0 and "pending already" in second.err, second
        deadline = time.time() + 30
        while time.time() < deadline and not ran.exists():
            time.sleep(0.2)
        assert ran.read_text() == "backup --only-offline sptest-pending\n"
        time.sleep(4)  # the fake backup ends, and the lock with it
        third = run(hook, env=env, input=xml)
        assert third.rc == 0 and "handed off" in third.err, third
        time.sleep(6)
        assert ran.read_text().count("backup --only-offline") == 2
    finally:
        try:
            os.unlink(pending)
        except FileNotFoundError:
            pass


def test_systemd_units_command(bins, tmp_path):
    """What the systemd-run unit runs, `stillpoint-hook --backup-on-stop BIN
    DOMAIN UUID HOOK_PID`, run directly (this host has no systemd): it waits
    until the hook's process is gone, runs `BIN backup --only-offline
    DOMAIN`, and holds the VM's pending lock meanwhile, so a second run is
    refused (exit 3) and says why."""
    uuid = "0ff1ce00-5eed-4a11-8b0b-000000000018"
    ran = tmp_path / "ran"
    fake = tmp_path / "fake-stillpoint"
    fake.write_text(f"#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {ran}\n")
    fake.chmod(0o755)
    hook_proc = subprocess.Popen(["sleep", "2"])
    cmd = [bins.hook, "--backup-on-stop", str(fake), "sptest-unit", uuid, str(hook_proc.pid)]
    try:
        first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        second = run(cmd)
        assert second.rc == 3 and "pending already" in second.err, second
        hook_proc.wait()
        gone = time.time()
        first.communicate(timeout=60)
        assert first.returncode == 0
        when, args = ran.read_text().split(" ", 1)
        assert args == "backup --only-offline sptest-unit\n"
        assert float(when) >= gone, "the backup ran before the hook was gone"
        bad = run([bins.hook, "--backup-on-stop", str(fake), "d", "not-a-uuid", "1"])
        assert bad.rc == 2 and "not for use by hand" in bad.err, bad
    finally:
        hook_proc.kill()
        try:
            os.unlink(f"/run/stillpoint/offline/{uuid}.pending")
        except FileNotFoundError:
            pass
