"""Remote hypervisors over SSH: a real sshd on loopback, this machine
as its own remote host, libvirt reached as qemu+ssh://root@127.0.0.1:<port>/system,
TPM and NVRAM read and written over SFTP, disks through an SSH tunnel."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import libvirt
import pytest

import sp_points as spp
import sp_sshd
import sp_vm
from conftest import Bins, run

MiB = 1 << 20


@pytest.fixture(scope="module")
def sshd(conn, test_user):
    s = sp_sshd.Sshd(users=("root", test_user))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def vm(conn, confdir):
    v = sp_vm.TestVM(conn, tag="rm", disks=(("vda", "qcow2", 32 * MiB),
                                            ("vdb", "qcow2", 16 * MiB)))
    try:
        v.start()
        # OVMF with no OS writes NVRAM in bursts up to ~12 s apart
        # (docs/facts.md); points taken moments apart must see the same bytes.
        v.wait_settled(quiet_s=12, timeout=120)
        yield v
    finally:
        v.remove()


def rbackup(bins, sshd, vm, target, *args, user="root", env=None):
    return run([bins.stillpoint, "backup", vm.name, "-c", sshd.uri(user), "--ssh-key",
                sshd.clientkey, "--target", str(target), "--json", *args], env=env)


def test_check_over_ssh(bins, sshd, vm):
    r = run([bins.stillpoint, "check", vm.name, "-c", sshd.uri(), "--ssh-key", sshd.clientkey,
             "--json"])
    assert r.rc == 0, r
    j = r.json()
    assert j["tpm"]["path"] == vm.tpm_dir and j["tpm"]["owner"] == "tss"
    assert j["nvram"]["path"] == vm.nvram_path and j["nvram"]["owner"] == "libvirt-qemu"
    assert j["hypervisor"]["remote"] is True and j["hypervisor"]["host"] == "127.0.0.1"
    assert j["hypervisor"]["transport"] == "unix" and j["hypervisor"]["nbd_host"] == "127.0.0.1"
    # No client certificate in the default tls_client_dir: check says so, and
    # tcp is refused with what to do (test_tls.py has the certificates).
    assert j["hypervisor"]["tls_ready"] is False
    r = run([bins.stillpoint, "check", vm.name, "-c", sshd.uri(), "--ssh-key", sshd.clientkey,
             "--set", "transport=tcp", "--set", "tls_client_dir=/nonexistent"])
    assert r.rc == 3 and "transport = tcp: this machine has no NBD TLS client certificate" \
        in r.err, r


def test_points_over_ssh_equal_local_ones(bins, sshd, vm, tmp_path):
    """A full and an incremental taken over SSH hold what local points taken at
    the same moment hold: disks (qemu-img compare), TPM and NVRAM (SHA-256)."""
    for level in ("full", "inc"):
        vm.write("vda", 0x21 if level == "full" else 0x22, 2 * MiB, 1 * MiB)
        vm.write("vdb", 0x31 if level == "full" else 0x32, 0, 128 * 1024)
        vm.wait_settled()
        lr = run([bins.stillpoint, "backup", vm.name, "--target", str(tmp_path / "local"),
                  "--json", "--level", level])
        assert lr.rc == 0, lr
        rr = rbackup(bins, sshd, vm, tmp_path / "remote", "--level", level)
        assert rr.rc == 0, rr
        lj, rj = lr.json(), rr.json()
        assert rj["host"] == "127.0.0.1" and rj["level"] == level
        for t in ("vda", "vdb"):
            rc, out = spp.compare_images(os.path.join(lj["path"], "disks", f"{t}.qcow2"),
                                         os.path.join(rj["path"], "disks", f"{t}.qcow2"))
            assert rc == 0, out
        assert [f["sha256"] for f in rj["tpm"]["files"]] == [f["sha256"] for f in lj["tpm"]["files"]]
        assert rj["nvram"]["files"][0]["sha256"] == lj["nvram"]["files"][0]["sha256"]
        assert spp.sha256sum_c(rj["path"]).returncode == 0
        if level == "inc":
            assert rj["disks"][0]["bytes_written"] < 4 * MiB
    assert vm.is_running()
    # No job directory, no tunnel socket left anywhere.
    assert not [d for d in os.listdir("/run/stillpoint") if vm.uuid in d]


def test_restore_over_ssh(bins, sshd, vm, tmp_path, conn):
    r = rbackup(bins, sshd, vm, tmp_path / "points")
    assert r.rc == 0, r
    point = r.json()["path"]
    name = sp_vm.unique_name("rmr")
    disks = tempfile.mkdtemp(prefix=f"{name}-", dir="/var/tmp")
    os.chmod(disks, 0o711)
    try:
        rr = run([bins.stillpoint, "restore", point, "--name", name, "--disks-to", disks,
                  "--define", "--json", "-c", sshd.uri(), "--ssh-key", sshd.clientkey])
        assert rr.rc == 0, rr
        uuid = rr.json()["uuid"]
        tpm = f"/var/lib/libvirt/swtpm/{uuid}/tpm2"
        st = os.stat(tpm)
        import pwd, grp
        tss = pwd.getpwnam("tss").pw_uid
        assert (st.st_uid, st.st_mode & 0o777) == (tss, 0o700)
        for f in os.listdir(tpm):
            fs = os.stat(os.path.join(tpm, f))
            assert (fs.st_uid, fs.st_mode & 0o777) == (tss, 0o600)
        assert spp.sha256(os.path.join(tpm, "tpm2-00.permall")) == \
            spp.sha256(os.path.join(point, "tpm", "tpm2", "tpm2-00.permall"))
        nv = rr.json()["nvram"]
        nst = os.stat(nv)
        assert (nst.st_uid, nst.st_mode & 0o777) == (pwd.getpwnam("libvirt-qemu").pw_uid, 0o600)
        assert spp.sha256(nv) == r.json()["nvram"]["files"][0]["sha256"]
        for t in ("vda", "vdb"):
            rc, out = spp.compare_images(os.path.join(point, "disks", f"{t}.qcow2"),
                                         os.path.join(disks, f"{t}.qcow2"))
            assert rc == 0, out
        conn.lookupByName(name)  # defined through the remote connection
    finally:
        try:
            conn.lookupByName(name).undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM |
                                                  libvirt.VIR_DOMAIN_UNDEFINE_TPM)
        except libvirt.libvirtError:
            pass
        shutil.rmtree(disks, ignore_errors=True)


def test_unknown_host_key_refused(bins, sshd, vm, tmp_path):
    sshd.distrust()
    try:
        r = rbackup(bins, sshd, vm, tmp_path)
        assert r.rc == 3, r
        assert "is not known" in r.err and "never accepts one silently" in r.err
        assert "SHA256:" in r.err
    finally:
        sshd.trust()


def test_changed_host_key_refused(bins, sshd, vm, tmp_path):
    before = sp_vm.checkpoints(vm.dom)
    sshd.impostor()
    try:
        r = rbackup(bins, sshd, vm, tmp_path)
        assert r.rc == 3, r
        assert "has CHANGED" in r.err
    finally:
        sshd.trust()
    assert sp_vm.checkpoints(vm.dom) == before and vm.is_running()


def test_remote_user_without_tpm_rights(bins, sshd, vm, tmp_path, test_user):
    events = sp_vm.EventWatcher(vm.uuid)
    try:
        r = rbackup(bins, sshd, vm, tmp_path, user=test_user)
        assert r.rc == 3, r
        assert f"TPM state {vm.tpm_dir} on 127.0.0.1 is owned by tss:tss mode 0700" in r.err
        assert "connect as root" in r.err and "group tss there" in r.err
        assert events.kinds() == []  # never paused
    finally:
        events.close()


def test_tunnel_dropped_during_copy(bins, sshd, vm, tmp_path):
    before = sp_vm.checkpoints(vm.dom)
    slow = f'sleep 3; exec "{Bins.copy}"'
    p = subprocess.Popen([bins.stillpoint, "backup", vm.name, "-c", sshd.uri(), "--ssh-key",
                          sshd.clientkey, "--target", str(tmp_path), "--set", f"copier={slow}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once the tunnel forwards (its local socket is there) the copiers run;
        # the tunnel is the ssh client with a -L forwarding to this run's job.
        deadline = time.time() + 60
        local = None
        while time.time() < deadline and not local:
            local = [d for d in os.listdir("/run/stillpoint")
                     if vm.uuid in d and d.endswith(".local")
                     and os.path.exists(f"/run/stillpoint/{d}/nbd.sock")]
            time.sleep(0.05)
        assert local, "the tunnel never forwarded"
        time.sleep(1)
        out = subprocess.run(["pgrep", "-f", f"ssh -N .*-p {sshd.port}"], capture_output=True,
                             text=True).stdout.split()
        tunnel = [int(x) for x in out]
        assert tunnel, "no tunnel process seen"
        for pid in tunnel:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    assert "the copier: failed for" in err
    assert vm.is_running()
    assert sp_vm.checkpoints(vm.dom) == before
    assert vm.dom.jobInfo()[0] == 0


def test_backup_all_and_prune_over_ssh(bins, sshd, vm, tmp_path):
    """--all and prune reach the hypervisor the way backup does: the key given
    on the command line goes to the listing connection and to every VM's run."""
    conf = tmp_path / "conf"
    (conf / "vm.d").mkdir(parents=True)
    (conf / "stillpoint.conf").write_text("[defaults]\nenabled = no\nkeep = 1\n")
    (conf / "vm.d" / f"{vm.name}.conf").write_text("enabled = yes\n")
    env = {"STILLPOINT_CONFDIR": str(conf)}
    common = ["-c", sshd.uri(), "--ssh-key", sshd.clientkey, "--target", str(tmp_path / "p")]
    for _ in range(2):
        r = run([bins.stillpoint, "backup", "--all", "--json", *common], env=env)
        assert r.rc == 0, r
        mine = [v for v in r.json()["vms"] if v["domain"] == vm.name]
        assert mine[0]["status"] == "ok" and mine[0]["manifest"]["host"] == "127.0.0.1"
    r = run([bins.stillpoint, "prune", vm.name, "--json", *common], env=env)
    assert r.rc == 0, r
    assert len(spp.points(tmp_path / "p" / vm.name)[0]) == 1


def test_offline_points_over_ssh(bins, sshd, make_vm, tmp_path):
    """A shut-off VM over qemu+ssh: an offline full and an offline incremental,
    each equal to the image at its time, the VM shut off after each, its NVRAM
    and TPM untouched, the hook's mark (written over SFTP) gone."""
    vm = make_vm(tag="rmoff", disks=(("vda", "qcow2", 16 * MiB),))
    nvram = vm.nvram_path
    vm.wait_settled(quiet_s=4.0)
    vm.dom.destroy()
    state = (spp.sha256(nvram), spp.sha256(os.path.join(vm.tpm_dir, "tpm2-00.permall")))
    parent = None
    for i, level in enumerate(("full", "inc")):
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x{0x61 + i:02x} "
                        f"{(1 + 2 * i) * MiB} {MiB}", vm.disks["vda"]], check=True,
                       capture_output=True)
        r = rbackup(bins, sshd, vm, tmp_path / "p", "--level", level)
        assert r.rc == 0, r
        j = r.json()
        assert j["offline"] is True and j["level"] == level and j["host"] == "127.0.0.1"
        assert j["parent"] == parent
        parent = j["id"]
        assert vm.state() == libvirt.VIR_DOMAIN_SHUTOFF
        assert not os.path.exists(f"/run/stillpoint/offline/{vm.uuid}")
        assert run([bins.stillpoint, "verify", j["path"]]).rc == 0
        now = tmp_path / "vda.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", vm.disks["vda"], str(now)],
                       check=True)
        rc, out = spp.compare(str(now), os.path.join(j["path"], "disks", "vda.qcow2"))
        assert rc == 0, out
    assert (spp.sha256(nvram), spp.sha256(os.path.join(vm.tpm_dir, "tpm2-00.permall"))) == state
