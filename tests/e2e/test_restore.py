"""`stillpoint restore` and `stillpoint verify` against real libvirt and swtpm.
A VM gets a TPM NV index and an EFI variable with known values, then
a full and two incremental points; each point is restored as a new domain and
in place, and what comes back is read with swtpm, the OVMF store parser and
qemu-img compare."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import libvirt
import pytest

import sp_ovmf
import sp_points as spp
import sp_tpm
import sp_vm
from sp_guest import remove_domain_named
from conftest import run

MiB = 1 << 20
NV_INDEX = 0x01500020
NV_VALUE = b"stillpt!"
VAR_NAME = "StillpointKnown"
VAR_GUID = "7c3bd1e4-52d7-4a64-a1c8-6f0e0d1f9a21"
VAR_VALUE = b"known value at every point"


class Chain:
    """The module's VM, its points, and the disk content at each point."""

    def __init__(self, vm, target, work):
        self.vm, self.target, self.work = vm, target, work
        self.points = []     # point dirs, oldest first
        self.expected = []   # {target: raw file} per point

    def take(self, bins):
        r = run([bins.stillpoint, "backup", self.vm.name, "--target", str(self.target), "--json"])
        assert r.rc == 0, r
        point = r.json()["path"]
        # Nothing writes between the point and this snapshot, so it is the
        # disk content the point must hold.
        snap = {}
        self.vm.dom.suspend()
        try:
            for t in self.vm.disks:
                snap[t] = self.vm.snapshot_disk(
                    t, os.path.join(self.work, f"{len(self.points)}-{t}.raw"))
        finally:
            self.vm.dom.resume()
        self.points.append(point)
        self.expected.append(snap)
        return point


@pytest.fixture(scope="module")
def chain(conn, confdir, bins):
    work = tempfile.mkdtemp(prefix="sptest-restore-", dir="/var/tmp")
    os.chmod(work, 0o711)
    vm = sp_vm.TestVM(conn, tag="rs")
    try:
        # libvirt creates the TPM state and NVRAM at the first start.
        vm.start()
        vm.wait_settled()
        nvram = vm.nvram_path
        vm.dom.destroy()
        with sp_tpm.SwtpmOn(vm.tpm_dir, copy=False) as tpm:
            tpm.nv_define_ordinary(NV_INDEX, len(NV_VALUE))
            tpm.nv_write(NV_INDEX, NV_VALUE)
        sp_ovmf.add_var(nvram, VAR_NAME, VAR_GUID, VAR_VALUE)
        vm.start()
        vm.wait_settled()
        assert sp_ovmf.get_var(vm.nvram_path, VAR_NAME, VAR_GUID)[1] == VAR_VALUE
        c = Chain(vm, os.path.join(work, "points"), work)
        c.take(bins)
        vm.write("vda", 0x5A, 1 * MiB, 2 * MiB)
        vm.write("vdb", 0x6B, 0, 64 * 1024)
        c.take(bins)
        vm.write("vda", 0x7C, 40 * MiB, 1 * MiB)
        vm.zero("vda", 1 * MiB, 64 * 1024)
        c.take(bins)
        levels = [spp.manifest(p)["level"] for p in c.points]
        assert levels == ["full", "inc", "inc"]
        yield c
    finally:
        vm.remove()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def restored(conn):
    """Names of restored domains, removed after the test."""
    names = []
    yield names
    for n in names:
        remove_domain_named(conn, n)


def tree_hashes(d):
    return {f: spp.sha256(os.path.join(d, f)) for f in os.listdir(d)
            if f != ".lock" and not f.startswith("TMP")}


def check_restored(conn, point, expected, name, restored):
    """The restored domain `name` holds point's state: checked before start,
    after a start and stop. restored: restore's --json report."""
    m = spp.manifest(point)
    dom = conn.lookupByName(name)
    uuid = dom.UUIDString()
    tpm_dir = f"/var/lib/libvirt/swtpm/{uuid}/tpm2"
    # Before start: exactly the point's files, owned as libvirt makes them,
    # so libvirt will not run swtpm_setup.
    assert tree_hashes(tpm_dir) == tree_hashes(os.path.join(point, "tpm", "tpm2"))
    st = os.stat(tpm_dir)
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, sp_tpm_uid())
    st = os.stat(os.path.join(tpm_dir, "tpm2-00.permall"))
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, sp_tpm_uid())
    assert os.stat(os.path.dirname(tpm_dir)).st_mode & 0o777 == 0o711
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    nvram = xml.split("<nvram")[1].split(">", 1)[1].split("<")[0].strip()
    assert spp.sha256(nvram) == m["nvram"]["files"][0]["sha256"]
    assert os.stat(nvram).st_mode & 0o777 == 0o600
    log_path = f"/var/log/swtpm/libvirt/qemu/{name}-swtpm.log"
    log_start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    dom.create()
    time.sleep(3)  # the firmware runs under TCG, with the restored TPM and NVRAM
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    # libvirt leaves the log of an earlier domain of this name behind: only
    # what this start wrote counts.
    log = f"/var/log/swtpm/libvirt/qemu/{name}-swtpm.log"
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            f.seek(log_start)
            assert "swtpm_setup" not in f.read()
    dom.destroy()
    with sp_tpm.SwtpmOnCopy(tpm_dir) as tpm:
        assert tpm.nv_read(NV_INDEX, len(NV_VALUE)) == NV_VALUE
    assert sp_ovmf.get_var(nvram, VAR_NAME, VAR_GUID)[1] == VAR_VALUE
    for d in m["disks"]:
        path = [x["path"] for x in restored["disks"] if x["target"] == d["target"]][0]
        rc, out = spp.compare(expected[d["target"]], path)
        assert rc == 0, f"{d['target']}: {out}"


def sp_tpm_uid():
    import pwd
    return pwd.getpwnam("tss").pw_uid


@pytest.mark.parametrize("i", [0, 1, 2])
def test_restore_each_point_as_new_domain(bins, conn, chain, restored, tmp_path, i):
    name = sp_vm.unique_name(f"rs{i}")
    disks = tempfile.mkdtemp(prefix=f"{name}-", dir="/var/tmp")
    os.chmod(disks, 0o711)
    restored.append(name)
    try:
        r = run([bins.stillpoint, "restore", chain.points[i], "--name", name, "--disks-to", disks,
                 "--define", "--json"])
        assert r.rc == 0, r
        j = r.json()
        assert j["name"] == name and j["uuid"] != chain.vm.uuid and j["defined"]
        assert [d["images"] for d in j["disks"]] == [i + 1, i + 1, 1]  # vdc raw: always full
        assert [os.path.basename(d["path"]) for d in j["disks"]] == \
            ["vda.qcow2", "vdb.qcow2", "vdc.raw"]  # named for the target, not the point
        check_restored(conn, chain.points[i], chain.expected[i], name, j)
    finally:
        shutil.rmtree(disks, ignore_errors=True)


def test_restore_keep_chain(bins, conn, chain, restored):
    name = sp_vm.unique_name("rskc")
    disks = tempfile.mkdtemp(prefix=f"{name}-", dir="/var/tmp")
    os.chmod(disks, 0o711)
    restored.append(name)
    try:
        r = run([bins.stillpoint, "restore", chain.points[2], "--name", name, "--disks-to", disks,
                 "--keep-chain", "--define", "--json"])
        assert r.rc == 0, r
        vda = os.path.join(disks, "vda.qcow2")
        info = json.loads(subprocess.run(["qemu-img", "info", "--backing-chain", "--output=json",
                                          vda], capture_output=True, text=True, check=True).stdout)
        assert len(info) == 3
        assert all(os.path.dirname(i["filename"]) == disks for i in info)
        check_restored(conn, chain.points[2], chain.expected[2], name, r.json())
    finally:
        shutil.rmtree(disks, ignore_errors=True)


# -- refusals: exit 3, nothing written ---------------------------------------------

def refused(bins, args, want):
    r = run([bins.stillpoint, "restore", *args])
    assert r.rc == 3, r
    assert want in r.err, r
    return r


def test_refuses_defined_name(bins, chain, tmp_path):
    refused(bins, [chain.points[0], "--disks-to", str(tmp_path)], "is already defined")


def test_refuses_defined_uuid(bins, chain, tmp_path):
    refused(bins, [chain.points[0], "--name", sp_vm.unique_name("uu"), "--keep-uuid",
                   "--disks-to", str(tmp_path)], "is already defined")
    assert os.listdir(tmp_path) == []


def test_refuses_foreign_tpm_dir(bins, chain, tmp_path):
    """--keep-uuid under a new name while that UUID's TPM state exists (the
    original was undefined but its swtpm directory was kept)."""
    m = spp.manifest(chain.points[0])
    fake_uuid = "0badc0de-0000-4000-8000-000000000001"
    d = f"/var/lib/libvirt/swtpm/{fake_uuid}/tpm2"
    os.makedirs(d)
    try:
        with open(os.path.join(d, "tpm2-00.permall"), "wb") as f:
            f.write(b"another VM's TPM")
        crafted = copy_point(chain, tmp_path, 0)
        edit_manifest(crafted, lambda j: j.update(uuid=fake_uuid, domain="sptest-gone"))
        refused(bins, [crafted, "--name", sp_vm.unique_name("ft"), "--keep-uuid",
                       "--disks-to", str(tmp_path / "disks")],
                f"TPM state directory {d} is not empty")
    finally:
        shutil.rmtree(os.path.dirname(d))
    assert m["uuid"] != fake_uuid


def test_refuses_running_replace(bins, chain, tmp_path):
    refused(bins, [chain.points[0], "--replace", "--disks-to", str(tmp_path)], "is not shut off")


def test_refuses_existing_disk(bins, chain, tmp_path):
    (tmp_path / "vda.qcow2").write_text("someone's disk")
    refused(bins, [chain.points[0], "--name", sp_vm.unique_name("ex"), "--disks-to",
                   str(tmp_path)], "exists: restore the disks elsewhere")
    assert (tmp_path / "vda.qcow2").read_text() == "someone's disk"


def copy_point(chain, tmp_path, i):
    """A copy of the whole domain directory (so chains resolve); returns the
    copy of point i."""
    src = os.path.dirname(chain.points[i])
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return str(dst / os.path.basename(chain.points[i]))


def edit_manifest(point, change):
    """Changes the manifest as a crafted point would: SHA256SUMS re-stamped,
    so that what refuses it is the check under test, not the checksum."""
    p = os.path.join(point, "manifest.json")
    j = json.load(open(p))
    change(j)
    json.dump(j, open(p, "w"))
    restamp(point)


def restamp(point):
    """SHA256SUMS recomputed for every file it lists."""
    sums = os.path.join(point, "SHA256SUMS")
    lines = []
    for line in open(sums).read().splitlines():
        rel = line[66:]
        lines.append(f"{spp.sha256(os.path.join(point, rel))}  {rel}\n")
    open(sums, "w").write("".join(lines))


@pytest.mark.parametrize("field,value,want", [
    ("file", "../../../etc/passwd", "disks[0].file"),
    ("file", "/etc/passwd", "disks[0].file"),
    ("parent_file", "../../../../etc/x/disks/vda.qcow2", "disks[0].parent_file"),
    ("target", "../vda", "disks[0].target"),
])
def test_refuses_escaping_manifest_paths(bins, chain, tmp_path, field, value, want):
    point = copy_point(chain, tmp_path, 1)
    edit_manifest(point, lambda j: j["disks"][0].__setitem__(field, value))
    refused(bins, [point, "--name", sp_vm.unique_name("esc"), "--disks-to",
                   str(tmp_path / "d")], want)


@pytest.mark.parametrize("change,want", [
    (lambda j: j["nvram"].__setitem__("path", "nvram/../../x"), "nvram.path"),
    (lambda j: j["tpm"]["files"][0].__setitem__("name", "../permall"), "tpm.files[0].name"),
    (lambda j: j["tpm"].__setitem__("path", "/var/lib/libvirt/swtpm"), "tpm.path"),
    (lambda j: j.__setitem__("id", "../../x"), "id"),
])
def test_refuses_escaping_state_paths(bins, chain, tmp_path, change, want):
    point = copy_point(chain, tmp_path, 0)
    edit_manifest(point, change)
    refused(bins, [point, "--name", sp_vm.unique_name("esc")], want)


def test_refuses_symlink_inside_point(bins, chain, tmp_path):
    point = copy_point(chain, tmp_path, 0)
    os.symlink("/etc/shadow", os.path.join(point, "nvram", "evil"))
    refused(bins, [point, "--name", sp_vm.unique_name("sym")], "is a symlink")


def test_refuses_backing_file_not_in_manifest(bins, chain, tmp_path):
    """A qcow2 whose header names another backing file than the manifest."""
    point = copy_point(chain, tmp_path, 1)
    img = os.path.join(point, "disks", "vda.qcow2")
    subprocess.run(["qemu-img", "rebase", "-u", "-F", "raw", "-b", "/etc/hostname", img],
                   check=True)
    refused(bins, [point, "--name", sp_vm.unique_name("bk"), "--disks-to",
                   str(tmp_path / "d")], "backing file is /etc/hostname")


def test_refuses_encrypted_tpm_without_secret(bins, chain, tmp_path):
    point = copy_point(chain, tmp_path, 0)
    secret = "9b3a1c2d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
    edit_manifest(point, lambda j: j["tpm"].__setitem__("encryption_secret", secret))
    refused(bins, [point, "--name", sp_vm.unique_name("enc"), "--disks-to",
                   str(tmp_path / "d")], f"libvirt secret {secret}")


# -- verify ---------------------------------------------------------------------------

def verify(bins, point):
    return run([bins.stillpoint, "verify", point, "--json"])


def test_verify_clean_points(bins, chain):
    for p in chain.points:
        r = verify(bins, p)
        assert r.rc == 0, r
        assert r.json()["ok"] and r.json()["checks"] > 10


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.parametrize("what", ["disk", "nvram", "tpm", "manifest"])
def test_verify_names_a_flipped_byte(bins, chain, tmp_path, what):
    point = copy_point(chain, tmp_path, 1)
    m = spp.manifest(point)
    rel = {"disk": "disks/vda.qcow2", "nvram": m["nvram"]["path"],
           "tpm": "tpm/tpm2/tpm2-00.permall", "manifest": "manifest.json"}[what]
    path = os.path.join(point, rel)
    # Inside the data for images, in a value for the manifest: still parses.
    if what == "manifest":
        offset = open(path).read().index('"host"') + 9
    else:
        offset = {"disk": os.path.getsize(path) - 100, "nvram": 0x1000, "tpm": 200}[what]
    flip(path, offset)
    r = verify(bins, point)
    assert r.rc == 1, r
    assert rel in [p["file"] for p in r.json()["problems"]], r


def test_verify_names_a_missing_parent(bins, chain, tmp_path):
    point = copy_point(chain, tmp_path, 2)
    parent = os.path.join(os.path.dirname(point), os.path.basename(chain.points[1]))
    os.unlink(os.path.join(parent, "disks", "vda.qcow2"))
    r = verify(bins, point)
    assert r.rc == 1, r
    problems = r.json()["problems"]
    assert any(p["file"] == "disks/vda.qcow2" and "vda.qcow2: missing" in p["problem"]
               for p in problems), problems


# -- last: the module's VM is replaced by its restored self --------------------------

def test_restore_in_place_after_host_loss(bins, conn, chain):
    """The original is destroyed and undefined with its NVRAM and TPM state,
    its disks deleted; the newest point brings it back under its own name and
    UUID. Runs last in this module: the module's VM is the restored one after."""
    vm = chain.vm
    point, expected = chain.points[-1], chain.expected[-1]
    uuid = vm.uuid
    vm.dom.destroy()
    vm.dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM |
                         libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    for p in vm.disks.values():
        os.unlink(p)
    assert not os.path.exists(f"/var/lib/libvirt/swtpm/{uuid}/tpm2/tpm2-00.permall")
    # A point never decides where restore writes: the recorded paths are
    # used only when asked for.
    r = run([bins.stillpoint, "restore", point, "--define", "--json"])
    assert r.rc == 3 and "--recorded-paths" in r.err, r
    assert not any(os.path.exists(p) for p in vm.disks.values())
    r = run([bins.stillpoint, "restore", point, "--define", "--json", "--recorded-paths"])
    assert r.rc == 0, r
    assert [d["path"] for d in r.json()["disks"]] == [d["recorded"] for d in r.json()["disks"]]
    j = r.json()
    assert j["name"] == vm.name and j["uuid"] == uuid
    vm.dom = conn.lookupByName(vm.name)
    check_restored(conn, point, expected, vm.name, j)
