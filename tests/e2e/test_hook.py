"""stillpoint-hook against the real libvirtd, swtpm and OVMF, and
`stillpoint hook` / `stillpoint state`.

The hook is installed for this module only (sp_hooktest.HookBed: a wrapper
that gives it this module's configuration; everything off for VMs but ours).
VMs are started paused: OVMF then never runs, so TPM state and NVRAM change
only when a test changes them (through a real swtpm, sp_tpm.SwtpmOn)."""
import json
import os
import pwd
import shutil
import subprocess
import time

import libvirt
import pytest

import sp_tpm
import sp_vm
from conftest import run
from sp_hooktest import (HOOK_LINK, HookBed, StoreLock, flip_byte, manufactured_since,
                         sha256, swtpm_log_size, tree_hashes)

SMALL = (("vda", "qcow2", 16 * sp_vm.MiB),)
NV_INDEX = 0x01500042
MARKER = b"stillpoint-hook!"
TSS = pwd.getpwnam("tss")


@pytest.fixture(scope="module")
def bed(bins, conn, tmp_path_factory):
    b = HookBed(bins, tmp_path_factory.mktemp("hookbed"))
    try:
        b.install()
        yield b
    finally:
        b.uninstall()


def hook_vm(make_vm, bed, tpm=True, efi=True, **policy):
    vm = make_vm(start=False, tag="hook", disks=SMALL, tpm=tpm, efi=efi)
    bed.policy(vm.name, **policy)
    return vm


def cycle(vm):
    """Start (paused) and stop: prepare ... release, as libvirt runs them.
    Returns the NVRAM path (libvirt 9.0 shows it in the live XML only)."""
    vm.start(paused=True)
    nvram = vm.nvram_path
    vm.dom.destroy()
    return nvram


def write_marker(vm):
    """A real TPM change while the VM is off: an NV index with MARKER."""
    with sp_tpm.SwtpmOn(vm.tpm_dir, copy=False) as tpm:
        tpm.nv_define_ordinary(NV_INDEX, len(MARKER))
        tpm.nv_write(NV_INDEX, MARKER)


def read_marker(state_dir):
    with sp_tpm.SwtpmOnCopy(state_dir) as tpm:
        return tpm.nv_read(NV_INDEX, len(MARKER))


def assert_libvirt_layout(tpm_dir):
    """Owner and modes exactly as libvirt makes them (and swtpm expects)."""
    st = os.stat(tpm_dir)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, TSS.pw_uid, TSS.pw_gid)
    st = os.stat(os.path.dirname(tpm_dir))
    assert (st.st_mode & 0o7777, st.st_uid) == (0o711, 0)
    st = os.stat(os.path.join(tpm_dir, "tpm2-00.permall"))
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, TSS.pw_uid, TSS.pw_gid)


# --- release: snapshots at stop --------------------------------------------------

def test_stop_snapshots_tpm_and_nvram_as_left_by_the_stop(bed, make_vm):
    vm = hook_vm(make_vm, bed, keep_snapshots=2)
    mark = bed.log_size()
    nvram = cycle(vm)
    ids = bed.snapshots(vm.uuid)
    assert len(ids) == 1, bed.log(vm.name, mark)
    snap = bed.snapshot_dir(vm.uuid, ids[0])
    # The files equal the state directories after the stop.
    assert tree_hashes(os.path.join(snap, "tpm", "tpm2")) == tree_hashes(vm.tpm_dir)
    assert "tpm2-00.permall" in tree_hashes(vm.tpm_dir)
    assert sha256(os.path.join(snap, "nvram", os.path.basename(nvram))) == sha256(nvram)
    r = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=snap,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count(": OK") == 4, r
    with open(os.path.join(snap, "domain.xml")) as f:
        xml = f.read()
    assert vm.uuid in xml and nvram in xml  # the live XML libvirt gave the hook
    meta = bed.meta(vm.uuid, ids[0])
    assert meta["event"] == "release end -"
    assert meta["nvram"]["path"] == nvram and meta["tpm"]["subdir"] == "tpm2"
    assert meta["tpm"]["files"][0]["uid"] == TSS.pw_uid  # the source's owner, for restore
    for root, dirs, files in os.walk(bed.vm_store(vm.uuid)):
        for n, want in [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            st = os.stat(os.path.join(root, n))
            assert (st.st_mode & 0o7777, st.st_uid) == (want, 0), os.path.join(root, n)
    assert any(f"snapshot {bed.state_dir}/{vm.uuid}/{ids[0]}" in l for l in bed.log(vm.name, mark))
    # libvirt 9.0 runs qemu.d hooks without a main /etc/libvirt/hooks/qemu script.
    assert os.path.islink(HOOK_LINK)

    # Nothing changed: no new snapshot.
    mark = bed.log_size()
    cycle(vm)
    assert bed.snapshots(vm.uuid) == ids
    assert any(f"unchanged since snapshot {ids[0]}" in l for l in bed.log(vm.name, mark))

    # A TPM change while off: prepare says so, release keeps the new state.
    write_marker(vm)
    mark = bed.log_size()
    cycle(vm)
    ids = bed.snapshots(vm.uuid)
    assert len(ids) == 2
    assert any("differs from snapshot" in l and "TPM state" in l
               for l in bed.log(vm.name, mark))
    tpm_copy = os.path.join(bed.snapshot_dir(vm.uuid, ids[1]), "tpm", "tpm2")
    assert tree_hashes(tpm_copy) == tree_hashes(vm.tpm_dir)
    assert read_marker(tpm_copy) == MARKER  # a working TPM state, with the change

    # An NVRAM change makes a third: keep_snapshots = 2 removes the oldest.
    flip_byte(nvram, os.path.getsize(nvram) - 4096)
    mark = bed.log_size()
    cycle(vm)
    after = bed.snapshots(vm.uuid)
    assert len(after) == 2 and after[0] == ids[1] and after[1] not in ids
    newest = bed.snapshot_dir(vm.uuid, after[1])
    assert sha256(os.path.join(newest, "nvram", os.path.basename(nvram))) == sha256(nvram)
    assert any("removed 1 old snapshot (keep_snapshots = 2)" in l
               for l in bed.log(vm.name, mark))


def test_vm_without_tpm_or_nvram_starts_and_stops(bed, make_vm):
    vm = hook_vm(make_vm, bed, tpm=False, efi=False)
    mark = bed.log_size()
    cycle(vm)
    assert any("nothing to snapshot" in l for l in bed.log(vm.name, mark))
    assert not os.path.exists(bed.vm_store(vm.uuid))
    vm.start(paused=True)
    assert vm.is_paused()


def test_full_or_read_only_state_dir_never_fails_a_start_or_stop(bed, make_vm, tmp_path):
    full, ro = tmp_path / "full", tmp_path / "ro"
    mounts = []
    try:
        for d, opts in ((full, "size=256k"), (ro, "ro,size=256k")):
            d.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], check=True)
            mounts.append(d)
        with open(full / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        vm = hook_vm(make_vm, bed, state_dir=str(full))
        mark = bed.log_size()
        cycle(vm)
        log = bed.log(vm.name, mark)
        assert any("not snapshotted" in l and "No space left on device" in l for l in log), log
        store = full / vm.uuid
        assert not store.exists() or sorted(os.listdir(store)) == [".lock"]  # no partial left

        bed.policy(vm.name, state_dir=str(ro / "state"))
        mark = bed.log_size()
        cycle(vm)
        log = bed.log(vm.name, mark)
        assert any("not snapshotted" in l and "Read-only file system" in l for l in log), log
        vm.start(paused=True)
        assert vm.is_paused()
        vm.dom.destroy()
    finally:
        for d in mounts:
            subprocess.run(["umount", str(d)], check=False)


# --- prepare: lost TPM state -------------------------------------------------------

def test_lost_tpm_state_is_put_back_before_swtpm_starts(bed, make_vm):
    vm = hook_vm(make_vm, bed, recover_tpm="auto")
    cycle(vm)  # libvirt's swtpm_setup made the TPM
    write_marker(vm)
    cycle(vm)
    sid = bed.snapshots(vm.uuid)[-1]
    want = tree_hashes(os.path.join(bed.snapshot_dir(vm.uuid, sid), "tpm", "tpm2"))
    count = len(bed.snapshots(vm.uuid))
    for how in ("missing", "empty"):
        shutil.rmtree(vm.tpm_dir)
        if how == "empty":  # what libvirt also takes for "no TPM yet"
            os.mkdir(vm.tpm_dir, 0o700)
            open(os.path.join(vm.tpm_dir, ".lock"), "w").close()
        mark, swmark = bed.log_size(), swtpm_log_size(vm.name)
        vm.start(paused=True)
        assert vm.is_paused()
        assert tree_hashes(vm.tpm_dir) == want, how  # swtpm runs on the snapshot's state
        assert not manufactured_since(vm.name, swmark), how
        assert_libvirt_layout(vm.tpm_dir)
        log = bed.log(vm.name, mark)
        # One loud line: the VM, the snapshot's time, and how to make a wipe stick.
        taken = bed.meta(vm.uuid, sid)["created"]
        assert any(f"put back snapshot {sid} (taken {taken})" in l and "warning" in l and
                   f"`stillpoint state forget {vm.name}`" in l for l in log), log
        vm.dom.destroy()
        assert read_marker(vm.tpm_dir) == MARKER  # the VM's own TPM, not a new one
    assert len(bed.snapshots(vm.uuid)) == count  # recovered = unchanged: no new snapshots


def test_lost_tpm_with_recover_off_is_logged_and_state_restore_puts_it_back(bed, make_vm):
    vm = hook_vm(make_vm, bed, recover_tpm="off")
    cycle(vm)
    write_marker(vm)
    nvram = cycle(vm)
    sid = bed.snapshots(vm.uuid)[-1]
    want = tree_hashes(os.path.join(bed.snapshot_dir(vm.uuid, sid), "tpm", "tpm2"))
    nv_owner = os.stat(nvram)

    shutil.rmtree(vm.tpm_dir)
    mark, swmark = bed.log_size(), swtpm_log_size(vm.name)
    vm.start(paused=True)
    assert manufactured_since(vm.name, swmark)  # libvirt made a brand-new TPM
    assert tree_hashes(vm.tpm_dir) != want
    log = bed.log(vm.name, mark)
    assert any("error:" in l and "recover_tpm = off" in l and
               f"`stillpoint state restore {vm.name} {sid}`" in l for l in log), log
    assert os.path.exists(os.path.join(bed.snapshot_dir(vm.uuid, sid), "PINNED"))

    r = bed.state("restore", vm.name)
    assert r.rc == 3 and "is running" in r.err, r
    vm.dom.destroy()  # a snapshot of the new TPM...
    ids = bed.snapshots(vm.uuid)
    r = bed.state("list", vm.name, "--json")
    assert r.rc == 0, r
    listed = r.json()["snapshots"]
    assert [s["id"] for s in listed] == ids and ids[-1] != sid
    assert [s["pinned"] for s in listed if s["id"] == sid] == [True]  # ...kept by prune

    r = bed.state("restore", vm.name, sid)
    assert r.rc == 0 and f"restored snapshot {sid} of {vm.name}" in r.out, r
    assert tree_hashes(vm.tpm_dir) == want
    assert_libvirt_layout(vm.tpm_dir)
    st = os.stat(nvram)
    assert (st.st_uid, st.st_gid, st.st_mode) == (nv_owner.st_uid, nv_owner.st_gid,
                                                  nv_owner.st_mode)
    after = bed.snapshots(vm.uuid)
    assert bed.meta(vm.uuid, after[-1])["event"] == f"restored from {sid}"

    mark, swmark = bed.log_size(), swtpm_log_size(vm.name)
    vm.start(paused=True)
    assert not manufactured_since(vm.name, swmark)
    assert tree_hashes(vm.tpm_dir) == want
    assert not [l for l in bed.log(vm.name, mark) if "warning" in l or "error" in l]
    vm.dom.destroy()
    assert read_marker(vm.tpm_dir) == MARKER
    assert bed.snapshots(vm.uuid) == after  # the restored state was recorded as newest

    r = bed.state("restore", vm.name, sid)
    assert r.rc == 0 and "nothing changed" in r.out, r


def test_state_forget_keeps_an_intended_tpm_wipe(bed, make_vm):
    vm = hook_vm(make_vm, bed, recover_tpm="auto")
    cycle(vm)
    write_marker(vm)
    cycle(vm)
    ids = bed.snapshots(vm.uuid)
    want = tree_hashes(os.path.join(bed.snapshot_dir(vm.uuid, ids[-1]), "tpm", "tpm2"))

    r = bed.state("forget", "sptest-no-such-domain")
    assert r.rc == 3 and "not found" in r.err, r
    vm.start(paused=True)
    r = bed.state("forget", vm.name)
    assert r.rc == 3 and "is running" in r.err and "virsh shutdown" in r.err, r
    vm.dom.destroy()
    ids = bed.snapshots(vm.uuid)
    assert ids

    shutil.rmtree(vm.tpm_dir)  # the administrator's wipe, meant
    r = bed.state("forget", vm.name)
    assert r.rc == 0 and f"forgot {len(ids)} snapshots of {vm.name}: moved to " in r.out, r
    aside = r.out.split("moved to ", 1)[1].split()[0]
    assert os.path.dirname(aside) == bed.vm_store(vm.uuid)
    assert sorted(os.listdir(aside)) == sorted(ids)  # moved aside, not deleted
    assert bed.snapshots(vm.uuid) == []
    r = bed.state("list", vm.name)
    assert r.rc == 0 and "(none)" in r.out, r

    mark, swmark = bed.log_size(), swtpm_log_size(vm.name)
    vm.start(paused=True)
    assert manufactured_since(vm.name, swmark)  # libvirt made a new TPM, and it stays
    assert tree_hashes(vm.tpm_dir) != want
    assert not [l for l in bed.log(vm.name, mark) if "put back" in l or "lost" in l]
    vm.dom.destroy()
    assert len(bed.snapshots(vm.uuid)) == 1  # the new TPM is the one the hook keeps now
    assert sorted(os.listdir(aside)) == sorted(ids)

    r = bed.state("forget", vm.name)  # forgets the new one too; no store: nothing to do
    assert r.rc == 0 and "forgot 1 snapshot of" in r.out, r
    shutil.rmtree(bed.vm_store(vm.uuid))
    r = bed.state("forget", vm.name)
    assert r.rc == 0 and "nothing to forget" in r.out, r


def test_block_start_on_tpm_loss_refuses_the_start(bed, make_vm):
    vm = hook_vm(make_vm, bed, recover_tpm="off", block_start_on_tpm_loss="yes")
    cycle(vm)
    sid = bed.snapshots(vm.uuid)[-1]
    want = tree_hashes(vm.tpm_dir)
    shutil.rmtree(vm.tpm_dir)
    swmark = swtpm_log_size(vm.name)
    with pytest.raises(libvirt.libvirtError) as ei:
        vm.start(paused=True)
    msg = str(ei.value)  # libvirt passes the hook's stderr on
    assert "refusing the start" in msg and f"stillpoint state restore {vm.name} {sid}" in msg
    assert not vm.dom.isActive()
    assert not os.path.exists(vm.tpm_dir)  # libvirt never got to swtpm_setup
    assert not manufactured_since(vm.name, swmark)

    bed.policy(vm.name, recover_tpm="auto", block_start_on_tpm_loss="yes")
    vm.start(paused=True)
    assert tree_hashes(vm.tpm_dir) == want


# --- the hook run by hand: bad input, time bound -------------------------------------

UUID = "6f1c0b7e-5d4a-4c3b-9a29-1e0f2d3c4b5a"


@pytest.fixture
def direct(bins, tmp_path):
    """The hook binary run directly, as libvirt would, on files in tmp_path."""
    conf = tmp_path / "conf"
    (conf / "vm.d").mkdir(parents=True)
    tpm = tmp_path / "swtpm" / UUID / "tpm2"
    tpm.mkdir(parents=True)
    (tpm / "tpm2-00.permall").write_bytes(os.urandom(6000))
    nvram = tmp_path / "d1_VARS.fd"
    nvram.write_bytes(os.urandom(540672))

    class Direct:
        state = tmp_path / "state"
        tpm_dir, nvram_path = tpm, nvram

        @staticmethod
        def policy(**keys):
            with open(conf / "stillpoint.conf", "w") as f:
                f.write("[hook]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))

        @staticmethod
        def xml(name="d1", uuid=UUID, tpm=True, nvram=True):
            return f"""<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
  <os><type arch='x86_64' machine='q35'>hvm</type>
  {f"<nvram>{Direct.nvram_path}</nvram>" if nvram else ""}</os>
  <devices>{f"<tpm model='tpm-crb'><backend type='emulator' version='2.0'><source type='dir' path='{Direct.tpm_dir}'/></backend></tpm>" if tpm else ""}</devices></domain>"""

        @staticmethod
        def hook(*args, xml=None):
            t = time.monotonic()
            r = run([bins.hook, *args], env={"STILLPOINT_CONFDIR": str(conf)},
                    input=Direct.xml() if xml is None else xml, timeout=30)
            r.seconds = time.monotonic() - t
            assert r.out == ""  # libvirt reads a hook's stdout as domain XML
            return r

        @staticmethod
        def snapshots():
            d = Direct.state / UUID
            return sorted(n for n in os.listdir(d) if n[0].isdigit()) if d.exists() else []

    Direct.policy(state_dir=Direct.state)
    return Direct


def test_bad_input_exits_0_with_a_clear_log_line(direct):
    cases = [
        (("d1", "prepare", "begin", "-"), "<domain><name>d1", "not well-formed"),
        (("d1", "release", "end", "-"), "\x00\x01garbage", "nothing done"),
        (("d1", "frobnicate", "begin", "-"), None, "operation 'frobnicate begin' is not one"),
        (("d1", "release"), None, "called with 2 arguments"),
        (("d1", "release", "end", "-"), direct.xml(name="other"), "is for 'other', not 'd1'"),
        (("d1", "release", "end", "-"), direct.xml(uuid="../../../../tmp/x"), "no usable UUID"),
        (("d1", "release", "end", "-"), direct.xml(tpm=False, nvram=False),
         "nothing to snapshot"),
        (("d1", "release", "end", "migrated"), None, "after migrating away: no snapshot"),
    ]
    for args, xml, want in cases:
        r = direct.hook(*args, xml=xml)
        assert r.rc == 0 and want in r.err, (args, r)
        assert "Sanitizer" not in r.err, r
    assert direct.snapshots() == []
    assert not os.path.exists(os.path.join(os.path.dirname(str(direct.state)), "x"))
    # Other operations libvirt sends: silently nothing.
    for op in ("start begin", "started begin", "stopped end", "reconnect begin", "migrate begin"):
        r = direct.hook("d1", *op.split(), "-")
        assert (r.rc, r.err) == (0, ""), (op, r)
    # A bad configuration is logged, and nothing happens.
    direct.policy(keep_snapshots="many")
    r = direct.hook("d1", "release", "end", "-")
    assert r.rc == 0 and "keep_snapshots" in r.err and direct.snapshots() == [], r


def test_every_action_is_abandoned_past_its_time_bound(direct):
    assert direct.hook("d1", "release", "end", "-").rc == 0
    [first] = direct.snapshots()
    (direct.tpm_dir / "tpm2-00.permall").write_bytes(os.urandom(6000))
    with StoreLock(direct.state / UUID):  # a restore holds the store
        r = direct.hook("d1", "release", "end", "-")
        assert r.rc == 0 and "abandoned after 2000 ms" in r.err, r
        assert 1.9 < r.seconds < 3.5, r.seconds
        assert direct.snapshots() == [first]
        assert not [n for n in os.listdir(direct.state / UUID) if n.endswith(".partial")]

        # prepare while the TPM state is lost: recovery waits for the store, is
        # abandoned, and the start goes on (policy) or is refused (block).
        shutil.rmtree(direct.tpm_dir)
        r = direct.hook("d1", "prepare", "begin", "-")
        assert r.rc == 0 and "abandoned after 2000 ms" in r.err, r
        direct.policy(state_dir=direct.state, block_start_on_tpm_loss="yes")
        r = direct.hook("d1", "prepare", "begin", "-")
        assert r.rc == 1 and "refusing the start" in r.err, r
        assert not direct.tpm_dir.exists()
    r = direct.hook("d1", "prepare", "begin", "-")
    assert r.rc == 0 and f"put back snapshot {first}" in r.err, r
    assert (direct.tpm_dir / "tpm2-00.permall").exists()


def test_incoming_migration_state_is_not_recovered(direct):
    # On the destination, libvirt runs 'migrate begin' before 'prepare begin',
    # no swtpm_setup, and swtpm receives the state with the migration.
    assert direct.hook("d1", "release", "end", "-").rc == 0
    shutil.rmtree(direct.tpm_dir)
    assert direct.hook("d1", "migrate", "begin", "-").err == ""
    r = direct.hook("d1", "prepare", "begin", "-")
    assert r.rc == 0 and "incoming migration" in r.err and "put back" not in r.err, r
    assert not direct.tpm_dir.exists()
    # The mark is used once: a later start of a lost state recovers again.
    r = direct.hook("d1", "prepare", "begin", "-")
    assert r.rc == 0 and "put back snapshot" in r.err, r


# --- stillpoint hook install|uninstall|status, stillpoint state --------------------------

def test_hook_install_uninstall_status(bins, tmp_path):
    hd = tmp_path / "qemu.d"
    env = {"STILLPOINT_HOOK_DIR": str(hd)}
    link = hd / "stillpoint"
    r = run([bins.stillpoint, "hook", "status"], env=env)
    assert r.rc == 1 and "not installed" in r.out, r
    r = run([bins.stillpoint, "hook", "install", "--hook-binary", "/nonexistent/hook"], env=env)
    assert r.rc == 3 and "not an executable file" in r.err, r
    r = run([bins.stillpoint, "hook", "install", "--hook-binary", bins.hook], env=env)
    assert r.rc == 0 and "restart or reload" in r.out, r
    assert os.readlink(link) == bins.hook
    assert run([bins.stillpoint, "hook", "install", "--hook-binary", bins.hook],
               env=env).out.startswith("already installed")
    r = run([bins.stillpoint, "hook", "status", "--json"], env=env)
    assert r.rc == 0, r
    j = r.json()
    assert j["installed"] and j["executable"] and j["target"] == bins.hook
    assert set(j["policy"]) == {"snapshot_on_stop", "keep_snapshots", "recover_tpm",
                                "block_start_on_tpm_loss", "state_dir", "backup_on_stop"}
    r = run([bins.stillpoint, "hook", "uninstall"], env=env)
    assert r.rc == 0 and not os.path.lexists(link), r

    # Someone else's file of that name is left alone without --force.
    link.write_text("#!/bin/sh\nexit 0\n")
    for verb in ("install", "uninstall"):
        r = run([bins.stillpoint, "hook", verb, "--hook-binary", bins.hook], env=env)
        assert r.rc == 3 and "--force" in r.err and link.read_text().startswith("#!"), r
    r = run([bins.stillpoint, "hook", "install", "--hook-binary", bins.hook, "--force"], env=env)
    assert r.rc == 0 and os.readlink(link) == bins.hook, r
    r = run([bins.stillpoint, "hook", "frob"], env=env)
    assert r.rc == 2, r


def test_state_list_names_and_refusals(bed, bins, conn):
    r = bed.state("list", "sptest-no-such-domain")
    assert r.rc == 3 and "not found" in r.err, r
    r = bed.state("list", UUID)  # a domain libvirt no longer knows, by UUID
    assert r.rc == 0 and "(none)" in r.out, r
    r = bed.state("restore", UUID)
    assert r.rc == 3, r
    r = bed.state("list")
    assert r.rc == 2, r
