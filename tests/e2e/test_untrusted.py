"""A point is untrusted input (docs/design.md, "Threat model"): one test per
attack of issue 15, each with a crafted point (sp_crafted.py) against the real
stillpoint, libvirt, QEMU and swtpm. Each ends in a refusal that names the file
and the reason, and listings of /etc, /var/lib/libvirt, /root and the target
show that nothing was written or removed outside the restore's destination."""
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time

import libvirt
import pytest

import sp_crafted as crafted
import sp_points as spp
import sp_vm
from conftest import run

MiB = 1 << 20


@pytest.fixture(scope="module")
def points(conn, confdir, bins, tmp_path_factory):
    """The module's VM (running) and its points: a full and an incremental."""
    target = tmp_path_factory.mktemp("points")
    vm = sp_vm.TestVM(conn, tag="un")
    try:
        vm.start()
        vm.wait_settled()
        taken = []
        for i in range(2):
            vm.write("vda", 0x30 + i, i * MiB, 256 * 1024)
            r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--json"])
            assert r.rc == 0, r
            taken.append(r.json()["path"])
        assert [spp.manifest(p)["level"] for p in taken] == ["full", "inc"]
        yield vm, taken
    finally:
        vm.remove()


@pytest.fixture
def scratch():
    """A directory QEMU can reach (/var/tmp, 0711), removed after."""
    d = tempfile.mkdtemp(prefix="sptest-un-", dir="/var/tmp")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def restore(bins, point, *args, timeout=600):
    return run([bins.stillpoint, "restore", point, *args], timeout=timeout)


def refused(r, *want):
    assert r.rc == 3, r
    for w in want:
        assert w in r.err, (w, r)


def forget(conn, name, uuid=None):
    """A restored domain and its state, gone."""
    try:
        d = conn.lookupByName(name)
        uuid = d.UUIDString()
        if d.isActive():
            d.destroy()
        d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
    except libvirt.libvirtError:
        pass
    for p in (f"/var/lib/libvirt/qemu/nvram/{name}_VARS.fd",):
        if os.path.exists(p):
            os.unlink(p)
    if uuid:
        shutil.rmtree(f"/var/lib/libvirt/swtpm/{uuid}", ignore_errors=True)


# -- 1. restore writes where the manifest says -----------------------------------------

def test_manifest_disk_path_into_etc(bins, points, tmp_path, scratch):
    """A raw "disk" whose recorded path is a file in /etc/cron.d: never
    written, with or without --recorded-paths."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    evil = "/etc/cron.d/sptest-evil"
    crafted.set_disk_source(point, "vda", evil)
    name = sp_vm.unique_name("etc")
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", name, "--define")
    refused(r, f"disk vda was at {evil}", "--disks-to DIR", "--recorded-paths")
    r = restore(bins, point, "--name", name, "--define", "--recorded-paths")
    refused(r, f"disk vda: {evil} is in a system directory")
    assert before.changes() == []
    assert not os.path.exists(evil)


def test_nvram_and_tpm_host_paths_are_never_used(bins, conn, points, tmp_path, scratch):
    """nvram.host_path and tpm.host_path pointing into /etc and /root: the
    state goes to libvirt's own directories, and only there."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    crafted.edit_manifest(point, lambda j: (j["nvram"].__setitem__("host_path",
                                                                   "/etc/sptest-evil_VARS.fd"),
                                            j["tpm"].__setitem__("host_path", "/root/sptest-evil")))
    name = sp_vm.unique_name("nv")
    before = crafted.Listing(tmp_path, scratch, mine=[name])
    r = restore(bins, point, "--name", name, "--disks-to", scratch, "--json")
    try:
        assert r.rc == 0, r
        j = r.json()
        assert j["nvram"] == f"/var/lib/libvirt/qemu/nvram/{name}_VARS.fd"
        assert j["tpm"] == f"/var/lib/libvirt/swtpm/{j['uuid']}/tpm2"
        assert "recorded at /etc/sptest-evil_VARS.fd" in r.err  # shown, not used
        assert before.changes(allowed=[scratch, j["nvram"],
                                       f"/var/lib/libvirt/swtpm/{j['uuid']}"]) == []
    finally:
        forget(conn, name, r.json()["uuid"] if r.rc == 0 else None)


@pytest.mark.parametrize("what", ["symlink", "existing file", "group-writable directory"])
def test_recorded_path_onto_a_link_a_file_or_an_open_directory(bins, points, tmp_path, scratch,
                                                               what):
    """--recorded-paths with the recorded disk path a symlink (to a file
    that does not exist yet), an existing file, or in a directory others can
    write: refused, the link's target not created, the file untouched."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    d = os.path.join(scratch, "disks")
    os.mkdir(d, 0o711)
    os.chmod(d, 0o775 if what == "group-writable directory" else 0o711)
    path = os.path.join(d, "vda.qcow2")
    victim = os.path.join(scratch, "victim")
    if what == "symlink":
        os.symlink(victim, path)
    elif what == "existing file":
        open(path, "w").write("someone's disk")
    crafted.set_disk_source(point, "vda", path)
    for t in ("vdb", "vdc"):
        crafted.set_disk_source(point, t, os.path.join(d, f"{t}.img"))
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", sp_vm.unique_name("rp"), "--recorded-paths")
    if what == "group-writable directory":
        refused(r, f"disk destination: {d} is writable by its group", f"chmod go-w {d}")
    else:
        refused(r, f"{path} exists", "nothing is overwritten")
    assert before.changes() == []
    assert not os.path.exists(victim)
    if what == "existing file":
        assert open(path).read() == "someone's disk"


# -- 2. the domain XML is defined as it is -----------------------------------------------

DANGEROUS = {
    "qemu:commandline": ("<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/"
                         "qemu/1.0'><qemu:arg value='-sandbox'/></qemu:commandline>",
                         "/domain/qemu:commandline", "QEMU command-line namespace"),
    "hostdev": ("<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
                "<address domain='0' bus='0' slot='31' function='3'/></source></hostdev>"
                "</devices>", "/domain/devices[2]/hostdev", "a host device handed to the guest"),
    "filesystem": ("<devices><filesystem type='mount'><source dir='/root'/><target dir='r'/>"
                   "</filesystem></devices>", "/domain/devices[2]/filesystem",
                   "a host directory shared with the guest"),
    "file chardev": ("<devices><serial type='file'><source path='/etc/cron.d/sptest-log'/>"
                     "</serial></devices>", "/domain/devices[2]/serial/source",
                     "host path /etc/cron.d/sptest-log"),
}


@pytest.mark.parametrize("element", sorted(DANGEROUS))
def test_dangerous_domain_xml_refused(bins, conn, points, tmp_path, scratch, element):
    snippet, where, why = DANGEROUS[element]
    point = crafted.copy_domain(points[1][0], tmp_path)
    crafted.edit_domain_xml(point, lambda x: x.replace("</domain>", snippet + "</domain>"))
    name = sp_vm.unique_name("xml")
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", name, "--disks-to", scratch, "--define")
    refused(r, f"{point}: domain.xml of the point asks for", where, why, "--trust-domain-xml")
    assert before.changes() == []
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


def test_trusted_domain_xml_shows_what_the_filter_removes(bins, conn, points, tmp_path,
                                                          scratch):
    """--trust-domain-xml takes the XML as it is and prints the difference."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    log = os.path.join(scratch, "console.log")
    crafted.edit_domain_xml(point, lambda x: x.replace(
        "</devices>", f"<serial type='file'><source path='{log}'/></serial></devices>"))
    name = sp_vm.unique_name("tr")
    r = restore(bins, point, "--name", name, "--disks-to", scratch, "--trust-domain-xml",
                "--json")
    try:
        assert r.rc == 0, r
        assert "the filter would have removed" in r.err
        assert re.search(rf"^-\s*<source path=\"{re.escape(log)}\"/>", r.err, re.M) is None
        assert re.search(rf"^\+.*{re.escape(log)}", r.err, re.M), r.err
        assert log in r.json()["xml"]
    finally:
        forget(conn, name, r.json()["uuid"] if r.rc == 0 else None)


# -- 3. qcow2 data files and format probing ---------------------------------------------

@pytest.mark.parametrize("data_file", ["host file", "block device"])
def test_image_with_an_external_data_file(bins, points, tmp_path, scratch, data_file):
    """A full image replaced by a qcow2 whose header names a host file (a
    secret of ours) or a block device as its data file: refused by restore
    and verify, without ever opening it."""
    secret = os.path.join(scratch, "secret")
    open(secret, "wb").write(b"SECRET" * 1000)
    target = secret if data_file == "host file" else "/dev/loop0"
    point = crafted.copy_domain(points[1][0], tmp_path)
    img = os.path.join(point, "disks", "vda.qcow2")
    os.unlink(img)
    crafted.qcow2_naming(img, target)
    crafted.restamp(point)
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", sp_vm.unique_name("df"), "--disks-to", scratch)
    refused(r, "vda.qcow2: its qcow2 header names an external data file", f"({target})")
    v = run([bins.stillpoint, "verify", point, "--json"])
    assert v.rc == 1, v
    assert any(p["file"] == "disks/vda.qcow2" and "external data file" in p["problem"]
               for p in v.json()["problems"]), v
    assert before.changes() == []
    assert os.listdir(scratch) == ["secret"]


# -- 4. the target is trusted blindly ---------------------------------------------------

def test_untrusted_target_and_point_refused(bins, points, tmp_path):
    """A target, domain directory or point that others can write: backup,
    restore, verify and prune refuse it (exit 3) with the fix."""
    vm, taken = points
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(open_dir)])
    refused(r, f"{open_dir} is writable by everyone", f"chmod go-w {open_dir}")
    assert os.listdir(open_dir) == []
    point = crafted.copy_domain(taken[0], open_dir)
    domain_dir = os.path.dirname(point)
    os.chmod(domain_dir, 0o770)
    before = crafted.Listing(tmp_path)
    for argv in (["restore", point, "--disks-to", str(tmp_path)], ["verify", point],
                 ["prune", os.path.basename(domain_dir), "--target", str(open_dir),
                  "--set", "keep=1"]):
        r = run([bins.stillpoint, *argv])
        refused(r, f"{domain_dir} is writable by its group", f"chmod go-w {domain_dir}")
    if os.geteuid() == 0:
        os.chmod(domain_dir, 0o700)
        os.chown(point, 65534, 65534)
        r = run([bins.stillpoint, "verify", point])
        refused(r, f"{point} is owned by nobody, not root", f"chown root {point}")
        os.chown(point, 0, 0)
    assert before.changes() == []


def test_prune_never_follows_a_swapped_symlink(bins, points, tmp_path, scratch):
    """While prune removes a point, its disks/ directory is swapped for a
    symlink to a directory outside, again and again: prune removes the link,
    never what it points to (bounded race loop)."""
    victim = os.path.join(scratch, "victim")
    os.mkdir(victim)
    open(os.path.join(victim, "keep"), "w").write("outside every point")
    target = tmp_path / "t"
    target.mkdir(mode=0o700)
    full = points[1][0]
    stop = threading.Event()

    def racer(point):
        disks, aside = os.path.join(point, "disks"), os.path.join(point, "disks.x")
        while not stop.is_set():
            try:
                os.rename(disks, aside)
                os.symlink(victim, disks)
                time.sleep(0.0005)
                os.unlink(disks)
                os.rename(aside, disks)
            except OSError:
                pass

    for i in range(12):
        # A domain libvirt does not know: prune touches no checkpoint.
        point = crafted.copy_domain(full, target / "race", name="sptest-untrusted-race")
        # Two points: the copy (older) and a newer full one; keep = 1.
        newer = os.path.join(os.path.dirname(point), "29991231T235959Z-full")
        if not os.path.exists(newer):
            shutil.copytree(point, newer)
            crafted.edit_manifest(newer, lambda j: j.update(id="29991231T235959Z-full",
                                                            checkpoint=None))
        t = threading.Thread(target=racer, args=(point,))
        t.start()
        try:
            r = run([bins.stillpoint, "prune", os.path.basename(os.path.dirname(point)),
                     "--target", str(target / "race"), "--set", "keep=1"])
        finally:
            stop.set()
            t.join()
            stop.clear()
        # prune itself may fail against a writer racing it; it must never
        # reach outside the point.
        assert os.listdir(victim) == ["keep"], r
        assert open(os.path.join(victim, "keep")).read() == "outside every point"
        shutil.rmtree(target / "race", ignore_errors=True)


# -- 5. integrity -------------------------------------------------------------------------

def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.parametrize("chain", ["--flatten", "--keep-chain"])
def test_disk_hash_mismatch_refused(bins, points, tmp_path, scratch, chain):
    """A byte of a disk image changed behind SHA256SUMS: restore refuses and
    removes what it copied (a qcow2 chain, kept or flattened, is hashed
    while it is copied, and QEMU reads only copies that matched)."""
    point = crafted.copy_domain(points[1][1], tmp_path)
    img = os.path.join(point, "disks", "vdb.qcow2")
    flip(img, os.path.getsize(img) - 100)
    before = crafted.Listing(tmp_path, scratch)
    name = sp_vm.unique_name("hash")
    r = restore(bins, point, "--name", name, "--disks-to", scratch, chain)
    refused(r, "disks/vdb.qcow2 does not match its SHA-256 in SHA256SUMS")
    assert before.changes() == []
    assert os.listdir(scratch) == []


@pytest.mark.parametrize("what", ["manifest.json", "SHA256SUMS", "nvram", "tpm"])
def test_fifo_in_a_point_is_refused_without_hanging(bins, points, tmp_path, scratch, what):
    point = crafted.copy_domain(points[1][0], tmp_path)
    m = spp.manifest(point)
    rel = {"manifest.json": "manifest.json", "SHA256SUMS": "SHA256SUMS",
           "nvram": m["nvram"]["path"], "tpm": "tpm/tpm2/tpm2-00.permall"}[what]
    os.unlink(os.path.join(point, rel))
    os.mkfifo(os.path.join(point, rel), 0o600)
    before = crafted.Listing(tmp_path, scratch)
    t0 = time.monotonic()
    r = restore(bins, point, "--name", sp_vm.unique_name("fifo"), "--disks-to", scratch,
                timeout=60)
    refused(r, "is a FIFO")
    assert rel in r.err
    for cmd in (["verify", point], ["list", m["domain"], "--target",
                                    os.path.dirname(os.path.dirname(point))]):
        run([bins.stillpoint, *cmd], timeout=60)
    assert time.monotonic() - t0 < 60
    assert before.changes() == []


def test_oversize_state_file_refused(bins, points, tmp_path, scratch):
    """A TPM file grown to 300 MiB (sparse: it costs the attacker nothing)
    is refused before it is read."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    with open(os.path.join(point, "tpm", "tpm2", "tpm2-00.permall"), "r+b") as f:
        f.truncate(300 * MiB)
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", sp_vm.unique_name("big"), "--disks-to", scratch,
                timeout=60)
    refused(r, "tpm2-00.permall is larger than 256 MiB")
    assert before.changes() == []


def test_prune_merges_only_points_that_verify(bins, points, tmp_path):
    """keep = 1 would merge the incremental into a full point; a byte of its
    overlay was changed, so it is not merged, its full is kept, and its
    SHA256SUMS is not re-stamped over the change."""
    # A domain libvirt does not know: prune touches no checkpoint.
    inc = crafted.copy_domain(points[1][1], tmp_path, name="sptest-untrusted-merge")
    full = os.path.join(os.path.dirname(inc), os.path.basename(points[1][0]))
    img = os.path.join(inc, "disks", "vda.qcow2")
    flip(img, os.path.getsize(img) - 100)
    sums = open(os.path.join(inc, "SHA256SUMS"), "rb").read()
    manifest = open(os.path.join(inc, "manifest.json"), "rb").read()
    before = crafted.Listing(tmp_path)
    r = run([bins.stillpoint, "prune", os.path.basename(os.path.dirname(inc)), "--target",
             str(tmp_path), "--set", "keep=1"])
    assert r.rc == 1, r
    assert f"point {os.path.basename(inc)} does not verify" in r.err
    assert "disks/vda.qcow2 does not match its SHA-256" in r.err
    assert os.path.isdir(full) and os.path.isdir(inc)
    assert open(os.path.join(inc, "SHA256SUMS"), "rb").read() == sums
    assert open(os.path.join(inc, "manifest.json"), "rb").read() == manifest
    assert before.changes() == []


# -- 6. restore's own writes ------------------------------------------------------------

def state_of(vm):
    """What --replace must put back byte for byte: the definition, the
    NVRAM, the TPM state and the disks."""
    nvram = f"/var/lib/libvirt/qemu/nvram/{vm.name}_VARS.fd"
    return {
        "xml": vm.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE),
        "nvram": spp.sha256(nvram),
        "tpm": {f: spp.sha256(os.path.join(vm.tpm_dir, f)) for f in os.listdir(vm.tpm_dir)
                if not f.startswith(".")},
        "disks": {t: spp.sha256(p) for t, p in vm.disks.items()},
        "workdir": sorted(os.listdir(vm.workdir)),
        "nvram_dir": sorted(f for f in os.listdir(os.path.dirname(nvram))
                            if f.startswith(vm.name)),
        "tpm_parent": sorted(os.listdir(os.path.dirname(vm.tpm_dir))),
    }


def test_replace_whose_define_fails_puts_everything_back(bins, make_vm, tmp_path):
    vm = make_vm(tag="rpl")
    vm.wait_settled()
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(tmp_path), "--json"])
    assert r.rc == 0, r
    vm.dom.destroy()
    point = r.json()["path"]
    # Everything checks out, but libvirt will refuse this machine type.
    crafted.edit_domain_xml(point, lambda x: re.sub(r"machine='[^']*'", "machine='pc-q35-0.1'",
                                                    x))
    before_state = state_of(vm)
    before = crafted.Listing(tmp_path, vm.workdir, mine=[vm.name, vm.uuid])
    r = restore(bins, point, "--replace", "--define")
    assert r.rc == 1, r
    assert "libvirt refused the restored domain" in r.err and "machine type" in r.err
    assert "kept as" in r.err  # it did move the old files aside before
    assert state_of(vm) == before_state
    assert before.changes() == []


def test_clone_gets_its_own_tpm_and_no_unbacked_disk(bins, conn, points, tmp_path, scratch):
    """The point's XML names a TPM <source> directory (as newer libvirt
    writes it) and a data disk that was never backed up: the clone gets
    neither; both stay untouched."""
    vm, taken = points
    orig_tpm = os.path.join(scratch, "original-tpm")
    os.mkdir(orig_tpm, 0o700)
    open(os.path.join(orig_tpm, "tpm2-00.permall"), "wb").write(b"the original's live TPM")
    data = os.path.join(scratch, "data.raw")
    open(data, "wb").write(b"the original's data disk")
    point = crafted.copy_domain(taken[1], tmp_path)
    crafted.edit_domain_xml(point, lambda x: x.replace(
        "<backend type='emulator' version='2.0'/>",
        f"<backend type='emulator' version='2.0'><source type='dir' path='{orig_tpm}'/>"
        "</backend>").replace(
        "</devices>", f"<disk type='file' device='disk' backup='no'><driver name='qemu' "
        f"type='raw'/><source file='{data}'/><target dev='vdz' bus='virtio'/></disk>"
        "</devices>"))
    assert orig_tpm in open(os.path.join(point, "domain.xml")).read()
    disks = os.path.join(scratch, "disks")
    os.mkdir(disks)
    os.chmod(disks, 0o711)   # explicitly: CI runs under umask 077
    name = sp_vm.unique_name("clone")
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", name, "--disks-to", disks, "--define")
    refused(r, "vdz (disk, file)", "--other-disks keep", "--other-disks drop")
    assert before.changes() == []
    # libvirt 9.0 drops a TPM <source> it does not support: the XML restore
    # made is what counts, so it is printed, not defined.
    r = restore(bins, point, "--name", name, "--disks-to", disks, "--other-disks", "drop",
                "--json")
    try:
        assert r.rc == 0, r
        uuid, xml = r.json()["uuid"], r.json()["xml"]
        assert orig_tpm not in xml and data not in xml and "vdz" not in xml
        assert re.search(r"<backend type=\"emulator\" version=\"2.0\"/>", xml), xml
        clone_tpm = f"/var/lib/libvirt/swtpm/{uuid}/tpm2"
        assert r.json()["tpm"] == clone_tpm
        assert spp.sha256(os.path.join(clone_tpm, "tpm2-00.permall")) == \
            spp.sha256(os.path.join(point, "tpm", "tpm2", "tpm2-00.permall"))
        assert open(os.path.join(orig_tpm, "tpm2-00.permall"), "rb").read() == \
            b"the original's live TPM"
        assert open(data, "rb").read() == b"the original's data disk"
        assert before.changes(allowed=[disks, f"/var/lib/libvirt/swtpm/{uuid}",
                                       f"/var/lib/libvirt/qemu/nvram/{name}_VARS.fd"]) == []
    finally:
        forget(conn, name, r.json()["uuid"] if r.rc == 0 else None)


def test_undo_removes_only_what_restore_made(bins, conn, points, tmp_path, scratch):
    """A restore that fails at its last step (libvirt refuses the XML)
    removes its disks, NVRAM and TPM state, and nothing that was there."""
    point = crafted.copy_domain(points[1][0], tmp_path)
    crafted.edit_domain_xml(point, lambda x: re.sub(r"machine='[^']*'", "machine='pc-q35-0.1'",
                                                    x))
    open(os.path.join(scratch, "keep.txt"), "w").write("not restore's")
    name = sp_vm.unique_name("undo")
    before = crafted.Listing(tmp_path, scratch)
    r = restore(bins, point, "--name", name, "--disks-to", scratch, "--define")
    assert r.rc == 1, r
    assert "libvirt refused the restored domain" in r.err
    uuid = re.search(r"restored to /var/lib/libvirt/swtpm/([0-9a-f-]{36})/tpm2", r.err).group(1)
    assert not os.path.exists(f"/var/lib/libvirt/swtpm/{uuid}/tpm2")
    shutil.rmtree(f"/var/lib/libvirt/swtpm/{uuid}", ignore_errors=True)  # libvirt's 0711 parent
    assert os.listdir(scratch) == ["keep.txt"]
    assert before.changes() == []


# -- 3 (cont.): a guest's qcow2 header at LBA 0, copied raw by nbdcopy --------------------

def test_guest_written_qcow2_header_with_nbdcopy(bins, conn, points, tmp_path, scratch):
    """The guest writes a qcow2 header naming a host file as data file at
    LBA 0 of its disk; nbdcopy copies it raw. With copier_format = raw the
    point says so and restore gives back exactly the guest's bytes; told it
    is qcow2, backup's own check refuses the copier's output. Runs last: it
    writes the module VM's disk."""
    vm, _ = points
    secret = os.path.join(scratch, "secret")
    open(secret, "wb").write(b"HOST SECRET " * 4096)
    header = os.path.join(scratch, "header")
    open(header, "wb").write(crafted.header_naming(secret))
    os.chmod(header, 0o644)  # QEMU reads it (qemu-io -s)
    vm.qemu_io("vda", f"write -s {header} 0 65536")
    nbdcopy = 'copier=nbdcopy "$STILLPOINT_NBD_URI" "$STILLPOINT_OUTPUT"'
    target = tmp_path / "t"
    target.mkdir(mode=0o700)
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--level", "full",
             "--set", nbdcopy])
    assert r.rc == 1, r
    assert "disks/vda.qcow2: its qcow2 header names an external data file" in r.err
    # libvirt ends the aborted job a moment after the coordinator leaves.
    deadline = time.time() + 30
    while vm.dom.jobInfo()[0] != 0 and time.time() < deadline:
        time.sleep(0.2)
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(target), "--level", "full",
             "--set", nbdcopy, "--set", "copier_format=raw", "--json"])
    assert r.rc == 0, r
    point = r.json()["path"]
    expected = os.path.join(scratch, "vda.raw")
    vm.dom.suspend()
    try:
        vm.snapshot_disk("vda", expected)
    finally:
        vm.dom.resume()
    assert open(expected, "rb").read(4) == b"QFI\xfb"
    assert run([bins.stillpoint, "verify", point]).rc == 0
    disks = os.path.join(scratch, "disks")
    os.mkdir(disks)
    os.chmod(disks, 0o711)   # explicitly: CI runs under umask 077
    r = restore(bins, point, "--name", sp_vm.unique_name("lba0"), "--disks-to", disks, "--json")
    try:
        assert r.rc == 0, r
        vda = [d["path"] for d in r.json()["disks"] if d["target"] == "vda"][0]
        rc, out = spp.compare(expected, vda)
        assert rc == 0, out
        back = os.path.join(scratch, "back.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", vda, back], check=True)
        assert b"HOST SECRET" not in open(back, "rb").read()
    finally:
        if r.rc == 0:
            forget(conn, "", r.json()["uuid"])
            nv = r.json()["nvram"]
            if nv and os.path.exists(nv):
                os.unlink(nv)
