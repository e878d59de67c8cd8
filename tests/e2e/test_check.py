"""`stillpoint check`: the preflight against a real VM: what a backup would
capture, and every refusal with its fix (exit 3)."""
import os
import subprocess

import sp_vm
from conftest import run

NODE_XML = """<node>
<domain type='test'>
  <name>{name}</name>
  <uuid>77777777-8888-4999-8aaa-bbbbbbbbbbbb</uuid>
  <memory unit='KiB'>1048576</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    {nvram}
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    {tpm}
  </devices>
</domain>
</node>"""


def test_check_reports_disks_nvram_tpm(bins, shared_vm):
    r = run([bins.stillpoint, "check", shared_vm.name, "--json"])
    assert r.rc == 0, r
    j = r.json()
    assert j["ok"] is True
    assert j["uuid"] == shared_vm.uuid
    disks = {d["target"]: d for d in j["disks"]}
    assert set(disks) == {"vda", "vdb", "vdc"}
    for t, d in disks.items():
        assert d["source"] == shared_vm.disks[t]
        assert d["format"] == shared_vm.formats[t]
        assert d["size"] == shared_vm.sizes[t]
        assert d["skipped"] is None
    assert disks["vda"]["bitmaps"] and disks["vdb"]["bitmaps"]
    assert disks["vdc"]["bitmaps"] is False  # raw: full only
    nv = j["nvram"]
    assert nv["path"] == shared_vm.nvram_path
    assert nv["size"] == os.path.getsize(shared_vm.nvram_path)
    assert nv["captured"] and nv["readable"]
    tpm = j["tpm"]
    assert tpm["path"] == f"/var/lib/libvirt/swtpm/{shared_vm.uuid}/tpm2"
    assert tpm["version"] == "2.0" and tpm["model"] == "tpm-crb"
    assert tpm["owner"] == "tss" and tpm["mode"] == "0700"
    assert tpm["files"] >= 1 and tpm["captured"]
    assert tpm["encryption_secret"] is None
    assert j["agent"] == {"configured": False, "connected": False}
    assert any("vdc is raw" in w for w in j["warnings"])


def test_check_human_output(bins, shared_vm):
    r = run([bins.stillpoint, "check", shared_vm.name])
    assert r.rc == 0, r
    assert "result   a backup can run" in r.out
    assert shared_vm.tpm_dir in r.out
    assert shared_vm.nvram_path in r.out
    assert "full only" in r.out


def test_check_unprivileged_user_gets_the_hint(bins, shared_vm, test_user, tmp_path):
    # Everything the user needs is open to them, except the VM's state.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    for p in (tmp_path, open_dir):
        os.chmod(p, 0o777)
    os.chmod(tmp_path.parent, 0o755)
    os.chmod(tmp_path.parent.parent, 0o755)
    r = run([bins.stillpoint, "check", shared_vm.name, "--set", f"target={open_dir}",
             "--set", f"scratch_dir={open_dir}"], user=test_user,
            env={"STILLPOINT_CONFDIR": str(open_dir)})
    assert r.rc == 3, r
    want = (f"TPM state {shared_vm.tpm_dir} is owned by tss:tss mode 0700: "
            "run as root or add this user to group tss")
    assert want in r.err, r
    assert "result   a backup cannot run" in r.out


def test_check_unknown_domain(bins, conn):
    r = run([bins.stillpoint, "check", "sptest-no-such-domain"])
    assert r.rc == 3, r
    assert "domain 'sptest-no-such-domain' not found" in r.err
    assert "list --all" in r.err


def test_check_libvirt_unreachable(bins):
    r = run([bins.stillpoint, "check", "x", "-c", "qemu:///system?socket=/nonexistent/sock"])
    assert r.rc == 3, r
    assert "cannot connect to libvirt" in r.err and "libvirtd -d" in r.err


def test_check_shut_off_domain(bins, make_vm):
    """A shut-off VM: check says how an offline point would be taken, or
    refuses it under offline = skip."""
    vm = make_vm(start=False)
    r = run([bins.stillpoint, "check", vm.name, "--set", "nvram=optional", "--set",
             "tpm=optional"])
    assert r.rc == 0, r
    assert "an offline point: started paused" in r.out and "offline = backup" in r.out
    j = run([bins.stillpoint, "check", vm.name, "--set", "nvram=optional", "--set",
             "tpm=optional", "--json"]).json()
    assert j["offline"] == "backup"
    r = run([bins.stillpoint, "check", vm.name, "--set", "offline=skip"])
    assert r.rc == 3, r
    assert "is shut off and its policy says offline = skip" in r.err


def test_check_bad_config_is_exit_2(bins, shared_vm, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[defaults]\nfreeze = sometimes\n")
    r = run([bins.stillpoint, "check", shared_vm.name, "--config", str(bad)])
    assert r.rc == 2, r
    assert f"{bad}:2: key 'freeze'" in r.err


def test_check_network_nvram_refused(bins, tmp_path):
    # libvirt's test driver runs the domain without QEMU, which is the only way
    # to have a "running" VM with an NVRAM on iSCSI on this machine.
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(
        name="netnv", tpm="",
        nvram="<nvram type='network'><source protocol='iscsi' name='iqn.x:y/0'>"
              "<host name='example.com'/></source></nvram>"))
    # The default scratch_dir: one below pytest's tmp_path (/tmp/pytest-of-root
    # is 0700) would be refused, since QEMU could not reach it.
    r = run([bins.stillpoint, "check", "netnv", "-c", f"test://{node}",
             "--set", f"target={tmp_path}"])
    assert r.rc == 3, r
    assert "NVRAM of netnv is on the network" in r.err and "nvram = skip" in r.err
    assert "skipped: cdrom" in r.out
    r = run([bins.stillpoint, "check", "netnv", "-c", f"test://{node}", "--set", "nvram=skip",
             "--set", f"target={tmp_path}"])
    assert r.rc == 0, r


def test_check_passthrough_tpm_warns(bins, tmp_path):
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(
        name="pt", nvram="",
        tpm="<tpm model='tpm-tis'><backend type='passthrough'>"
            "<device path='/dev/tpm0'/></backend></tpm>"))
    r = run([bins.stillpoint, "check", "pt", "-c", f"test://{node}", "--json",
             "--set", f"target={tmp_path}"])
    assert r.rc == 0, r
    j = r.json()
    assert j["tpm"]["backend"] == "passthrough" and j["tpm"]["captured"] is False
    assert any("nothing to capture" in w for w in j["warnings"])
