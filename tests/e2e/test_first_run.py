"""A fresh host and every reboot: stillpoint's own directories (/run/stillpoint,
/var/lib/stillpoint) do not exist yet, whichever command runs first, under any
umask. Each test starts with both removed, as after a reboot (/run is a tmpfs)
on a host where stillpoint never ran; every command runs under umask 077, as
from a hardened root shell. What QEMU cannot reach is refused before the VM is
touched, naming the directory."""
import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import tempfile
import time

import libvirt
import pytest

import sp_sshd
import sp_vm
from conftest import run

MiB = 1 << 20
RUN, LIB = "/run/stillpoint", "/var/lib/stillpoint"
MODES = {RUN: 0o711, f"{RUN}/locks": 0o700, LIB: 0o711, f"{LIB}/scratch": 0o711,
         f"{LIB}/state": 0o700}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def held_locks():
    """Locks of stillpoint runs that are alive (another test run on this host)."""
    d = f"{RUN}/locks"
    held = []
    for n in os.listdir(d) if os.path.isdir(d) else []:
        try:
            fd = os.open(os.path.join(d, n), os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            held.append(n)
        finally:
            os.close(fd)
    return held


@pytest.fixture
def cold():
    """Removes stillpoint's own directories and nothing else; waits (bounded)
    for runs of other test sessions on this host to let go of their locks."""
    deadline = time.monotonic() + 120
    while held_locks() and time.monotonic() < deadline:
        time.sleep(1)
    for d in (RUN, LIB):
        shutil.rmtree(d, ignore_errors=True)
        assert not os.path.exists(d)


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def assert_own_modes(*paths):
    for p in paths:
        assert mode(p) == MODES[p], f"{p} is {mode(p):04o}, not {MODES[p]:04o}"
        st = os.lstat(p)
        assert st.st_uid == 0 and st.st_gid == 0 and stat.S_ISDIR(st.st_mode), p


@pytest.fixture(scope="module")
def vm(conn, confdir):
    v = sp_vm.TestVM(conn, tag="cold", disks=(("vda", "qcow2", 16 * MiB),))
    try:
        v.start()
        yield v
    finally:
        v.remove()


def backup(bins, vm, target, *args, env=None):
    return run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json", *args],
               env=env)


def test_hook_snapshot_first_then_backup(bins, vm, tmp_path, cold):
    """After `hook install`, a VM that stops before the first backup has the
    hook write the first snapshot, and with it /var/lib/stillpoint."""
    conf = tmp_path / "hookconf"
    (conf / "vm.d").mkdir(parents=True)
    with umask(0o077):
        r = run([bins.hook, vm.name, "release", "end", "-"], input=vm.dom.XMLDesc(0),
                env={"STILLPOINT_CONFDIR": str(conf)})
    assert r.rc == 0 and r.out == "", r
    snaps = os.listdir(f"{LIB}/state/{vm.uuid}")
    assert any(n[0].isdigit() for n in snaps), (snaps, r)
    assert_own_modes(LIB, f"{LIB}/state")
    with umask(0o077):
        b = backup(bins, vm, tmp_path / "points")
    assert b.rc == 0, b
    assert_own_modes(RUN, f"{RUN}/locks", LIB, f"{LIB}/scratch")


def test_prune_first_then_backup_under_umask_077(bins, vm, tmp_path, cold):
    with umask(0o077):
        p = run([bins.stillpoint, "prune", vm.name, "--target", str(tmp_path / "points"),
                 "--set", "keep=2"])
        assert p.rc == 0, p
        assert_own_modes(RUN, f"{RUN}/locks")
        b = backup(bins, vm, tmp_path / "points")
    assert b.rc == 0, b
    assert_own_modes(RUN, f"{RUN}/locks", LIB, f"{LIB}/scratch")
    point = b.json()["path"]
    # The point itself: directories 0700, files 0600, whatever the umask.
    for dirpath, dirs, files in os.walk(point):
        assert mode(dirpath) == 0o700, dirpath
        for f in files:
            assert mode(os.path.join(dirpath, f)) == 0o600, os.path.join(dirpath, f)


def test_restore_under_umask_077_then_start(bins, conn, vm, tmp_path, cold):
    with umask(0o077):
        b = backup(bins, vm, tmp_path / "points")
        assert b.rc == 0, b
        name = sp_vm.unique_name("cold-restored")
        # pytest's tmp_path lies below /tmp/pytest-of-root (0700): QEMU could
        # not open disks there, and restore says so before writing anything.
        closed = tmp_path / "restored"
        closed.mkdir()
        argv = [bins.stillpoint, "restore", b.json()["path"], "--name", name, "--define",
                "--json", "--disks-to"]
        r = run([*argv, str(closed)])
        assert r.rc == 3 and "cannot reach --disks-to" in r.err, r
        assert os.listdir(closed) == []
        disks = tempfile.mkdtemp(prefix="sptest-cold-", dir="/var/tmp")
        os.chmod(disks, 0o711)
        r = run([*argv, disks])
    try:
        assert r.rc == 0, r
        uuid = r.json()["uuid"]
        assert mode(f"/var/lib/libvirt/swtpm/{uuid}") == 0o711
        dom = conn.lookupByName(name)
        dom.create()  # swtpm and QEMU reach what restore made
        assert dom.isActive()
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            d = conn.lookupByName(name)
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
        shutil.rmtree(disks, ignore_errors=True)


def test_own_directories_made_wrong_are_repaired(bins, vm, tmp_path, cold):
    os.mkdir(RUN, 0o700)
    os.mkdir(LIB, 0o700)
    os.mkdir(f"{LIB}/scratch", 0o700)
    os.chown(f"{LIB}/scratch", 65534, 65534)
    b = backup(bins, vm, tmp_path / "points")
    assert b.rc == 0, b
    assert_own_modes(RUN, f"{RUN}/locks", LIB, f"{LIB}/scratch")


def test_unreachable_admin_scratch_dir_is_refused_before_the_vm_is_touched(bins, vm, tmp_path,
                                                                           cold):
    base = tempfile.mkdtemp(prefix="sptest-cold-", dir="/var/tmp")
    os.chmod(base, 0o711)
    closed = os.path.join(base, "closed")
    os.makedirs(os.path.join(closed, "scratch"))
    os.chmod(closed, 0o700)
    w = sp_vm.EventWatcher(vm.uuid)
    try:
        b = backup(bins, vm, tmp_path / "points", "--set", f"scratch_dir={closed}/scratch")
        time.sleep(0.5)
        assert b.rc == 3, b
        assert f"cannot reach scratch_dir {closed}/scratch: {closed} is root:root mode 0700" \
            in b.err, b
        assert w.kinds() == [], w.events
        assert mode(closed) == 0o700  # not ours: never changed
        c = run([bins.stillpoint, "check", vm.name, "--set", f"scratch_dir={closed}/scratch"])
        assert c.rc == 3 and f"{closed} is root:root mode 0700" in c.out, c
    finally:
        w.close()
        shutil.rmtree(base)


def test_cold_start_over_ssh(bins, conn, vm, test_user, tmp_path, cold):
    """The same first run against a hypervisor reached over SSH (this machine
    as its own remote host): the remote /run/stillpoint is made over SFTP."""
    # Only the remote side touches scratch/ (the local side makes the lock and
    # tunnel directories): made wrong, it must be repaired over SFTP.
    os.makedirs(f"{LIB}/scratch", 0o700)
    os.chown(f"{LIB}/scratch", 65534, 65534)
    s = sp_sshd.Sshd(users=("root",))
    try:
        with umask(0o077):
            b = run([bins.stillpoint, "backup", vm.name, "-c", s.uri(), "--ssh-key", s.clientkey,
                     "--target", str(tmp_path / "points"), "--json"])
        assert b.rc == 0, b
        assert_own_modes(RUN, LIB, f"{LIB}/scratch")
    finally:
        s.stop()


def test_apparmor_rule_parses_with_debians_libvirt_abstractions(tmp_path):
    """Parse-only (this kernel has no AppArmor): Debian's libvirt-qemu
    abstraction, its local include point with the line the package adds, and
    a VM profile made from libvirt's own TEMPLATE.qemu. A rule the parser
    rejects fails here, before a host with AppArmor would."""
    parser = shutil.which("apparmor_parser")
    assert parser, "apparmor_parser missing: scripts/packages.txt lists apparmor"
    base = tmp_path / "apparmor.d"
    for d in ("abi", "abstractions", "tunables", "local"):
        shutil.copytree(f"/etc/apparmor.d/{d}", base / d)
    shutil.copy(os.path.join(ROOT, "packaging/apparmor/stillpoint-qemu"),
                base / "abstractions" / "stillpoint-qemu")
    line = "include <abstractions/stillpoint-qemu>  # added by the stillpoint package\n"
    with open(base / "local/abstractions/libvirt-qemu", "a") as f:
        f.write(line)
    template = open("/etc/apparmor.d/libvirt/TEMPLATE.qemu").read()
    prof = base / "libvirt-00000000-0000-0000-0000-000000000001"
    prof.write_text(template.replace("LIBVIRT_TEMPLATE",
                                     "libvirt-00000000-0000-0000-0000-000000000001"))
    argv = [parser, "-Q", "-K", "-b", str(base), "-I", str(base)]
    r = subprocess.run([*argv, str(prof)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pre = subprocess.run([*argv, "-p", str(prof)], capture_output=True, text=True)
    assert "/run/stillpoint/*/nbd.sock rw," in pre.stdout, pre.stdout[-2000:]
    # The test can fail: a broken rule is refused by the same parser.
    with open(base / "abstractions" / "stillpoint-qemu", "a") as f:
        f.write("  /run/stillpoint/*/x bogus,\n")
    bad = subprocess.run([*argv, str(prof)], capture_output=True, text=True)
    assert bad.returncode != 0 and "stillpoint-qemu" in bad.stderr, bad
