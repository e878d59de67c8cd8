"""`stillpoint inspect` on real points of the tiny guest (issue 18): the TPM
NV index and the EFI variable the guest itself wrote are listed with their
values, Secure Boot shows the state of the firmware template the VM got,
and --against names exactly what the test changed between two points.

The guest writes through its own kernel (gtool: /dev/tpmrm0 and efivarfs),
so the TPM state and the variable store are the ones swtpm and OVMF wrote.
The shared tiny guest is used; names and the NV index are this run's own.
"""
import json
import re
import secrets

import pytest

import sp_consistency as spc
from conftest import run

# 0x0150xxxx: owner-defined indexes, away from the consistency loop's.
NV_INDEX = 0x01500200 + secrets.randbelow(0x100)
VAR = "SpInspect" + secrets.token_hex(2)
GUID = "3f6a1c2e-8b4d-4e5f-9a7b-1c2d3e4f5a6b"
EXTRA = ("pause_max_ms=10000",)


def inspect(bins, *args):
    r = run([bins.stillpoint, "inspect", *args])
    assert r.rc == 0, r
    return r


def var(report, name):
    found = [v for v in report["nvram"]["variables"] if v["name"] == name]
    return found[0] if found else None


def nv(report, handle):
    found = [n for n in report["tpm"]["nv_indexes"] if int(n["handle"], 16) == handle]
    return found[0] if found else None


@pytest.fixture(scope="module")
def two_points(bins, tiny_guest, confdir, tmp_path_factory):
    """Point a with VAR = 7; then VAR = 8, NV_INDEX defined and incremented;
    point b. Returns (a, b, counter value)."""
    g = tiny_guest
    target = tmp_path_factory.mktemp("inspect-points")
    g.check(f"gtool efivar-write {VAR} {GUID} 7")
    a = spc.take_point(bins.stillpoint, g.name, target, "freeze", EXTRA)
    g.check(f"gtool efivar-write {VAR} {GUID} 8")
    g.check(f"gtool nv-define {NV_INDEX:#x}")
    value = int(g.check(f"gtool nv-inc {NV_INDEX:#x}").strip())
    b = spc.take_point(bins.stillpoint, g.name, target, "freeze", EXTRA)
    return a, b, value


@pytest.mark.slow
def test_lists_what_the_guest_wrote(bins, two_points):
    a, b, value = two_points
    rep = inspect(bins, str(b.path), "--json").json()["subject"]
    v = var(rep, VAR)
    assert v is not None, [x["name"] for x in rep["nvram"]["variables"]]
    assert v["guid"] == GUID and v["data"] == (8).to_bytes(8, "little").hex()
    assert v["attributes"] == "NV,BS,RT"
    n = nv(rep, NV_INDEX)
    assert n is not None, rep["tpm"]["nv_indexes"]
    assert n["type"] == "counter" and n["size"] == 8 and n["read"] and n["value"] == value
    assert "NO_DA" in n["attributes"] and "WRITTEN" in n["attributes"]
    assert rep["tpm"]["version"] == "2.0" and rep["tpm"]["queried"]
    assert any(bk["hash"] == "sha256" and bk["pcrs"] == 24 for bk in rep["tpm"]["pcr_banks"])
    # The earlier point holds the earlier value and no such index.
    old = inspect(bins, str(a.path), "--json").json()["subject"]
    assert var(old, VAR)["data"] == (7).to_bytes(8, "little").hex()
    assert nv(old, NV_INDEX) is None
    # The human form says the same.
    text = inspect(bins, str(b.path)).out
    assert re.search(rf"^\s+{VAR}\s+{GUID} NV,BS,RT\s+0800000000000000 \(8\)$", text, re.M), text
    assert re.search(rf"^\s+0x{NV_INDEX:08x}\s+counter\s+8 bytes\s+value {value}\b", text, re.M), text


@pytest.mark.slow
def test_secure_boot_of_the_template(bins, two_points):
    _, b, _ = two_points
    rep = inspect(bins, str(b.path), "--json").json()["subject"]
    sb = rep["nvram"]["secure_boot"]
    template = b.manifest["nvram"]["template"] or ""
    # The tiny guest disables enrolled keys: libvirt picks a template
    # without them (OVMF_VARS_4M.fd), so the firmware is in setup mode.
    enrolled = ".ms." in template or "secboot" in template.lower()
    assert not enrolled, template
    assert sb["setup_mode"] is True and sb["secure_boot"] is False, sb
    for key in ("PK", "KEK", "db", "dbx"):
        assert sb[key]["present"] is False, (key, sb[key])
    # OVMF made its boot entries at boot: they parse, with device paths.
    boot = rep["nvram"]["boot"]
    assert boot["order"], boot
    assert boot["entries"] and all(e.get("path") for e in boot["entries"]), boot
    # Nothing provisioned the guest's TPM.
    assert rep["tpm"]["provisioned"] is False, rep["tpm"]


@pytest.mark.slow
def test_against_names_exactly_the_changes(bins, two_points):
    a, b, value = two_points
    r = inspect(bins, str(b.path), "--against", str(a.path), "--json").json()
    diff = sorted((d["area"], d["change"], d["item"]) for d in r["differences"])
    assert diff == [("nvram", "changed", f"{VAR}-{GUID}"),
                    ("tpm", "added", f"nv 0x{NV_INDEX:08x}")], r["differences"]
    # Seen from the other side, the index is missing.
    r = inspect(bins, str(a.path), "--against", str(b.path))
    assert f"NV index 0x{NV_INDEX:08x} missing" in r.out, r
    assert f"variable {VAR}-{GUID} changed: 0700000000000000 (7), was 0800000000000000 (8)" \
        in r.out, r
    assert "2 differences:" in r.out


@pytest.mark.slow
def test_against_the_running_vm(bins, tiny_guest, two_points):
    _, b, value = two_points
    r = inspect(bins, str(b.path), "--domain", tiny_guest.name, "--json").json()
    ours = [d for d in r["differences"]
            if VAR in d["item"] or d["item"] == f"nv 0x{NV_INDEX:08x}"]
    assert ours == [], r["differences"]
    assert r["reference"]["kind"] == "domain"
    assert nv(r["reference"], NV_INDEX)["value"] == value


def test_refuses_bad_usage(bins, tmp_path):
    r = run([bins.stillpoint, "inspect"])
    assert r.rc == 2 and "POINT_DIR or --domain" in r.err
    r = run([bins.stillpoint, "inspect", str(tmp_path), "--against", "x", "--domain", "y"])
    assert r.rc == 2
    r = run([bins.stillpoint, "inspect", str(tmp_path)])
    assert r.rc != 0 and "manifest" in r.err, r


def test_secure_boot_of_an_enrolled_template(bins, make_vm, tmp_path):
    """A VM whose firmware libvirt picks with Microsoft's keys enrolled,
    backed up paused (its NVRAM is then the template's copy): Secure Boot is
    on at its next boot, with the template's keys."""
    vm = make_vm(tag="sbkeys", disks=(("vda", "qcow2", 16 << 20),), enrolled_keys=True,
                 paused=True)
    r = run([bins.stillpoint, "backup", vm.name, "--target", str(tmp_path), "--json"])
    assert r.rc == 0, r
    point = r.json()["path"]
    rep = inspect(bins, point, "--json").json()["subject"]
    sb = rep["nvram"]["secure_boot"]
    assert sb["secure_boot"] is True and sb["setup_mode"] is False, sb
    assert sb["PK"]["certificates"] == 1 and sb["KEK"]["certificates"] >= 1, sb
    subjects = [e["subject"] for e in sb["db"]["entries"] if e["type"] == "x509"]
    assert any("CN=Microsoft Windows Production PCA 2011" in s for s in subjects), subjects
    assert sb["dbx"]["present"], sb["dbx"]
    text = inspect(bins, point).out
    assert "Secure Boot   on at next boot: user mode (PK enrolled" in text, text
