"""Proves the test-guest tooling against the real thing: the guest build, the
agent helpers, gtool in the guest, and the host-side readers of TPM state
(sp_tpm, through swtpm), OVMF NVRAM (sp_ovmf) and ext4-in-qcow2 files.

Later tests read backup points with these readers, so each reader is checked
against what the guest itself sees, and the consistency loop is checked the
way a backup point will be: disk, TPM and NVRAM taken in one pause agree.
"""

import gzip
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import sp_guest
import sp_ovmf
import sp_tpm
from sp_guest import AgentError, agent

pytest_plugins = ["fixtures_guest"]

GUID = sp_guest.LOOP_GUID    # the tests' own vendor GUID
GTOOL_IDX = 0x01500011
SEEDED_IDX = 0x01500020
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def u64(data):
    return int.from_bytes(data, "little")


def tree_digest(d):
    h = hashlib.sha256()
    for p in sorted(Path(d).rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------ no guest needed


def test_build_is_cached_and_readable_by_qemu():
    sp_guest.build_guest()              # cold or warm, whatever the machine has
    t0 = time.monotonic()
    d = sp_guest.build_guest()
    warm = time.monotonic() - t0
    print(f"timing: warm build {warm:.3f} s")
    assert warm < 1.0, "a cached build must not download or rebuild"
    # QEMU opens kernel and initrd as libvirt-qemu: world-readable or no boot.
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    for f in ("vmlinuz", "initrd.img", "kver"):
        assert stat.S_IMODE((d / f).stat().st_mode) == 0o644
    kver = (d / "kver").read_text().strip()
    listing = subprocess.run(["cpio", "-t", "--quiet"], check=True, stdout=subprocess.PIPE,
                             input=gzip.decompress((d / "initrd.img").read_bytes())
                             ).stdout.decode().split()
    for need in ("init", "bin/gtool", "usr/sbin/qemu-ga", "usr/bin/chattr", "bin/sh",
                 "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libglib-2.0.so.0",
                 f"lib/modules/{kver}/modules.dep",
                 f"lib/modules/{kver}/kernel/fs/ext4/ext4.ko",
                 f"lib/modules/{kver}/kernel/fs/efivarfs/efivarfs.ko"):
        assert need in listing, f"{need} missing from the initramfs"


def test_ovmf_store_add_replace_and_transition_states(tmp_path):
    store = tmp_path / "VARS.fd"
    shutil.copy(OVMF_VARS, store)
    assert sp_ovmf.read_vars(store) == {}, "the template holds no variables"

    sp_ovmf.add_var(store, "SpOne", GUID, (1).to_bytes(8, "little"))
    sp_ovmf.add_var(store, "SpTwo", GUID, b"two", attrs=3)
    sp_ovmf.add_var(store, "SpOne", GUID, (2).to_bytes(8, "little"))
    assert sp_ovmf.read_vars(store) == {("SpOne", GUID): (7, (2).to_bytes(8, "little")),
                                        ("SpTwo", GUID): (3, b"two")}
    # The replaced copy is marked deleted in place, as edk2 does (0x3F & 0xFD).
    recs = sp_ovmf.VarStore(store.read_bytes()).records
    assert [(r[3], r[1]) for r in recs] == [("SpOne", 0x3D), ("SpTwo", 0x3F), ("SpOne", 0x3F)]

    # Firmware stopped in the middle of replacing SpOne: old copy 0x3E,
    # new copy only a header (0x7F). The old one is the live one...
    img = bytearray(store.read_bytes())
    img[recs[0][0] + 2] = 0x3E
    img[recs[2][0] + 2] = 0x7F
    store.write_bytes(img)
    assert sp_ovmf.get_var(store, "SpOne", GUID) == (7, (1).to_bytes(8, "little"))
    # ...until the new one is complete (0x3F): then it wins over the 0x3E twin.
    img[recs[2][0] + 2] = 0x3F
    store.write_bytes(img)
    assert sp_ovmf.get_var(store, "SpOne", GUID) == (7, (2).to_bytes(8, "little"))
    assert sp_ovmf.get_var(store, "SpNone", GUID) is None

    # Stopped right after writing a header (State still 0xFF, name and data
    # not yet written): edk2 walks it as a bare 60-byte header, and so must
    # we, both to read and to append after it.
    img = bytearray(store.read_bytes())
    torn = sp_ovmf.VarStore(img).free
    sp_ovmf.add_var(store, "SpTorn", GUID, b"x" * 8)
    img = bytearray(store.read_bytes())
    img[torn + 2] = 0xFF
    img[torn + 60:torn + 60 + 14 + 8] = b"\xff" * 22
    store.write_bytes(img)
    assert sp_ovmf.VarStore(img).free == torn + 60
    assert ("SpTorn", GUID) not in sp_ovmf.read_vars(store)
    sp_ovmf.add_var(store, "SpAfter", GUID, b"after")
    assert sp_ovmf.get_var(store, "SpAfter", GUID) == (7, b"after")
    assert sp_ovmf.VarStore(store.read_bytes()).records[-1][0] == torn + 60


@pytest.fixture
def tss_state_dir():
    """A fresh swtpm TPM 2.0 state made by swtpm_setup, owned like libvirt's
    (tss, 0700), in a directory the tss user can reach."""
    owner = pwd.getpwnam("tss")
    parent = Path(tempfile.mkdtemp(prefix="sp-tpmtest-", dir="/var/tmp"))
    parent.chmod(0o755)
    state = parent / "tpm2"
    state.mkdir(mode=0o700)
    os.chown(state, owner.pw_uid, owner.pw_gid)
    subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--runas", "tss",
                    "--createek", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    yield state
    shutil.rmtree(parent)


def test_swtpm_on_real_dir_keeps_owner_and_copy_leaves_original(tss_state_dir):
    tss = pwd.getpwnam("tss")
    with sp_tpm.SwtpmOn(tss_state_dir, copy=False) as tpm:
        tpm.nv_define_counter(SEEDED_IDX)
        with pytest.raises(sp_tpm.TpmError) as e:
            tpm.nv_read_counter(SEEDED_IDX)
        assert e.value.rc == sp_tpm.TPM_RC_NV_UNINITIALIZED
        for _ in range(3):
            tpm.nv_increment(SEEDED_IDX)
        # A fresh TPM's first counter starts at 1 (highest counter so far + 1).
        assert tpm.nv_read_counter(SEEDED_IDX) == 3
        tpm.nv_define_counter(SEEDED_IDX, exist_ok=True)    # idempotent
        blob = os.urandom(1500)                             # several NV chunks
        tpm.nv_define_ordinary(SEEDED_IDX + 1, len(blob))
        tpm.nv_write(SEEDED_IDX + 1, blob)
        assert tpm.nv_read(SEEDED_IDX + 1, len(blob)) == blob
        # swtpm locks its state: a second instance (think: the VM starting)
        # must be refused, so seeding can never race a running VM.
        with pytest.raises(RuntimeError, match="swtpm exited"):
            with sp_tpm.SwtpmOn(tss_state_dir, copy=False):
                pass

    # Every file swtpm wrote keeps libvirt's owner; state files stay 0600.
    for p in tss_state_dir.iterdir():
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (tss.pw_uid, tss.pw_gid), p
        if p.name.endswith(".permall"):
            assert stat.S_IMODE(st.st_mode) == 0o600, p

    # Reading through a copy finds the values and leaves the original as is.
    before = tree_digest(tss_state_dir)
    assert sp_tpm.read_nv_counter(tss_state_dir, SEEDED_IDX) == 3
    with sp_tpm.SwtpmOnCopy(tss_state_dir) as tpm:
        tpm.nv_increment(SEEDED_IDX)                        # on the copy only
        assert tpm.nv_read_counter(SEEDED_IDX) == 4
        assert tpm.nv_read(SEEDED_IDX + 1, len(blob)) == blob
    assert tree_digest(tss_state_dir) == before
    assert sp_tpm.read_nv_counter(tss_state_dir, SEEDED_IDX) == 3


# ------------------------------------------------------------ the shared guest


@pytest.mark.slow
def test_agent_exec_and_freeze(tiny_guest):
    g = tiny_guest
    print(f"timing: boot to first agent answer {g.boot_seconds:.1f} s")
    assert agent(g.dom, {"execute": "guest-ping"}) == {}
    # Exit code, stdout and stderr come back apart; the script reaches the
    # guest shell verbatim (quotes, $, newlines).
    code, out, err = g.exec("echo \"it's $((6 * 7))\"; echo oops >&2\nexit 3")
    assert (code, out, err) == (3, "it's 42\n", "oops\n")
    assert " /data ext4 " in g.check("cat /proc/mounts")

    try:
        frozen = agent(g.dom, {"execute": "guest-fsfreeze-freeze"})
        assert frozen >= 1, "the ext4 data disk must be frozen"
        assert agent(g.dom, {"execute": "guest-fsfreeze-status"}) == "frozen"
        with pytest.raises(AgentError, match="frozen"):
            g.exec("true")
    finally:
        thawed = agent(g.dom, {"execute": "guest-fsfreeze-thaw"})
    assert thawed == frozen
    assert agent(g.dom, {"execute": "guest-fsfreeze-status"}) == "thawed"
    assert g.check("echo after > /data/thawed && cat /data/thawed") == "after\n"


@pytest.mark.slow
def test_gtool_values_match_host_readers_while_running(tiny_guest):
    g = tiny_guest
    g.check(f"gtool nv-define {GTOOL_IDX:#x} && gtool nv-define {GTOOL_IDX:#x}")
    first = int(g.check(f"gtool nv-inc {GTOOL_IDX:#x}"))
    assert int(g.check(f"gtool nv-inc {GTOOL_IDX:#x}")) == first + 1
    assert int(g.check(f"gtool nv-read {GTOOL_IDX:#x}")) == first + 1
    # The host reads the running VM's TPM through a copy of its state: no
    # lockout (NO_DA), and the value the guest last wrote.
    assert sp_tpm.read_nv_counter(sp_guest.tpm_state_dir(g.dom), GTOOL_IDX) == first + 1

    value = 0x0102030405060708
    g.check(f"gtool efivar-write SpTool {GUID} {value}")
    g.check(f"gtool efivar-write SpTool {GUID} {value + 1}")      # immutable file
    assert int(g.check(f"gtool efivar-read SpTool {GUID}")) == value + 1
    # OVMF wrote it through to the NVRAM file while the VM runs.
    attrs, data = sp_ovmf.get_var(sp_guest.live_nvram_path(g.dom), "SpTool", GUID)
    assert (attrs, u64(data)) == (7, value + 1)


# ------------------------------------------------------------ a guest of its own


@pytest.mark.slow
def test_consistency_loop_then_offline_seeding(fresh_tiny_guest):
    g = fresh_tiny_guest
    nvram = sp_guest.live_nvram_path(g.dom)
    tpm_dir = sp_guest.tpm_state_dir(g.dom)

    t0 = time.monotonic()
    base = sp_guest.start_loop(g.dom)
    time.sleep(6)
    g.dom.suspend()
    elapsed = time.monotonic() - t0
    # QEMU's stop does not wait for a TPM command in flight: let swtpm
    # finish it before copying its state.
    time.sleep(0.5)
    disk, tpm, efi = sp_guest.read_loop_values(g.data_disk, tpm_dir, nvram, force_share=True)
    print(f"timing: loop {disk - base} iterations in {elapsed:.1f} s "
          f"= {(disk - base) / elapsed:.0f}/s")
    assert disk - base >= 20, "the loop should have run for a while"
    # Write order disk -> TPM -> EFI: a pause falls between two of them.
    assert sp_guest.loop_values_consistent(disk, tpm, efi), (disk, tpm, efi)

    # Powered off, the files hold exactly what the paused VM had.
    g.dom.destroy()
    assert sp_guest.read_loop_values(g.data_disk, tpm_dir, nvram) == (disk, tpm, efi)

    # Offline seeding while the VM is off: an EFI variable appended to the
    # NVRAM and a counter defined in the real TPM state.
    sp_ovmf.add_var(nvram, "SpSeeded", GUID, (4242).to_bytes(8, "little"))
    with sp_tpm.SwtpmOn(tpm_dir, copy=False) as t:
        t.nv_define_counter(SEEDED_IDX)
        t.nv_increment(SEEDED_IDX)
        seeded = t.nv_read_counter(SEEDED_IDX)
    tss = pwd.getpwnam("tss")
    permall = (tpm_dir / "tpm2-00.permall").stat()
    assert (permall.st_uid, permall.st_gid, stat.S_IMODE(permall.st_mode)) == \
        (tss.pw_uid, tss.pw_gid, 0o600)

    sp_guest.start_guest(g)
    print(f"timing: reboot to first agent answer {g.boot_seconds:.1f} s")
    # OVMF accepted the appended variable and the guest sees it...
    assert int(g.check(f"gtool efivar-read SpSeeded {GUID}")) == 4242
    # ...the TPM state was kept (not recreated by libvirt) and holds the seed...
    assert int(g.check(f"gtool nv-read {SEEDED_IDX:#x}")) == seeded
    # ...and the guest's own view agrees with what the host read.
    assert int(g.check(f"gtool nv-read {sp_guest.LOOP_IDX:#x}")) == tpm
    assert int(g.check(f"gtool efivar-read {sp_guest.LOOP_VAR} {sp_guest.LOOP_GUID}")) == efi
    assert int(g.check("cat /data/counter")) == disk

    # The loop picks up where the counter is, and stops cleanly.
    assert sp_guest.start_loop(g.dom) == tpm
    assert sp_guest.stop_loop(g.dom) == ""
