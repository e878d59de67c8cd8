"""transport = tcp: the backup job's NBD server listens on a TCP port
of the hypervisor with libvirt's NBD TLS, and the copier connects to it with a
client certificate, without a tunnel.

Real certificates, made here with openssl (sp_tls.py): a CA, a server
certificate for 127.0.0.1 in the test bed's backup_tls_x509_cert_dir
(tests/setup-host points libvirt there; QEMU reads the files at every job
start, so they can come and go with this module), and a client certificate.
This machine is the hypervisor, locally and as qemu+ssh://root@127.0.0.1."""
import os
import shutil
import signal
import socket
import subprocess
import time
import types

import pytest

import sp_points as spp
import sp_sshd
import sp_tls
import sp_vm
from conftest import Bins, run

MiB = 1 << 20
TLS_DIR = "/etc/pki/sptest-backup-tls"   # tests/setup-host
NAMES = ("127.0.0.1", "localhost")
# The copier of every tcp point here, through the shell as a policy writes it:
# it records the URI it was handed, then does the real work.
URI_LOG_COPIER = f'echo "$STILLPOINT_NBD_URI" >> "$SPTEST_URI_LOG"; exec "{Bins.copy}"'


@pytest.fixture(scope="module")
def tls(conn):
    with open("/etc/libvirt/qemu.conf") as f:
        assert f'backup_tls_x509_cert_dir = "{TLS_DIR}"' in f.read().splitlines(), \
            "libvirt is not set up for these tests: run tests/setup-host"
    ca = sp_tls.CA()
    try:
        ca.server_dir(TLS_DIR, NAMES)
        yield types.SimpleNamespace(ca=ca, client=ca.client_dir(os.path.join(ca.dir, "client")))
    finally:
        sp_tls.clear_server_dir(TLS_DIR)
        shutil.rmtree(ca.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd(conn):
    s = sp_sshd.Sshd(users=("root",))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def vm(conn, confdir):
    # Neither firmware nor TPM: the transport carries disks only, and a VM
    # without OVMF needs no wait for its NVRAM to settle.
    v = sp_vm.TestVM(conn, tag="tls", disks=(("vda", "qcow2", 32 * MiB),
                                             ("vdb", "qcow2", 16 * MiB)), tpm=False, efi=False)
    try:
        v.start()
        yield v
    finally:
        v.remove()


def tcp(tls, *more):
    return ["--set", "transport=tcp", "--set", f"tls_client_dir={tls.client}", *more]


def backup(bins, vm, target, *args, sshd=None, env=None):
    remote = ["-c", sshd.uri(), "--ssh-key", sshd.clientkey] if sshd else []
    return run([bins.stillpoint, "backup", vm.name, *remote, "--target", str(target), "--json",
                *args], env=env)


def logged_uris(path):
    with open(path) as f:
        return f.read().split()


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def free_port_pair():
    """A port P with P and P + 1 free (nothing answers on either)."""
    for _ in range(20):
        p = sp_sshd.free_port()
        if p < 65535 and not listening(p) and not listening(p + 1):
            return p
    raise RuntimeError("no two adjacent free ports")


def no_change(vm, before, events):
    assert vm.is_running()
    assert sp_vm.checkpoints(vm.dom) == before
    assert vm.dom.jobInfo()[0] == 0
    assert events.kinds() == []  # never paused


def test_check_reports_tls_ready(bins, tls, vm, sshd):
    for remote in ([], ["-c", sshd.uri(), "--ssh-key", sshd.clientkey]):
        r = run([bins.stillpoint, "check", vm.name, *remote, *tcp(tls), "--json"])
        assert r.rc == 0, r
        h = r.json()["hypervisor"]
        assert h["tls_ready"] is True and h["transport"] == "tcp", h
        assert h["tls_dir"] == TLS_DIR and h["tls_client_dir"] == tls.client
        assert h["nbd_host"] == "127.0.0.1"
    r = run([bins.stillpoint, "check", vm.name, *tcp(tls)])
    assert r.rc == 0 and "nbd      TLS on 127.0.0.1 port 10809-10872" in r.out, r
    assert "certificates ready" in r.out


def test_tcp_points_equal_unix_points(bins, tls, vm, sshd, tmp_path):
    """A full and an incremental taken with transport = tcp, locally and over
    SSH, hold what the same points taken through the job's unix socket hold."""
    log = tmp_path / "uris"
    env = {"SPTEST_URI_LOG": str(log)}
    for level in ("full", "inc"):
        vm.write("vda", 0x41 if level == "full" else 0x42, 3 * MiB, 1 * MiB)
        vm.write("vdb", 0x51 if level == "full" else 0x52, 64 * 1024, 256 * 1024)
        u = backup(bins, vm, tmp_path / "unix", "--level", level)
        assert u.rc == 0, u
        points = {}
        for how, ssh in (("tcp", None), ("tcp-ssh", sshd)):
            r = backup(bins, vm, tmp_path / how, "--level", level,
                       *tcp(tls, "--set", f"copier={URI_LOG_COPIER}"), sshd=ssh, env=env)
            assert r.rc == 0, r
            assert "over NBD TLS from 127.0.0.1 port" in r.err, r
            assert r.json()["level"] == level
            points[how] = r.json()
        for t in ("vda", "vdb"):
            for how, j in points.items():
                rc, out = spp.compare_images(os.path.join(u.json()["path"], "disks", f"{t}.qcow2"),
                                             os.path.join(j["path"], "disks", f"{t}.qcow2"))
                assert rc == 0, (how, t, out)
        if level == "inc":
            assert all(j["disks"][0]["bytes_written"] < 4 * MiB for j in points.values())
    # Every disk of the four tcp points came over TLS, straight from QEMU.
    uris = logged_uris(log)
    assert len(uris) == 8, uris
    ports = set()
    for u in uris:
        assert u.startswith("nbds://127.0.0.1:"), u
        assert u.split("?")[1] == f"tls-certificates={tls.client}", u
        ports.add(int(u.split(":")[2].split("/")[0]))
    assert vm.is_running() and vm.dom.jobInfo()[0] == 0
    # Nothing listens once the jobs are done, and no tunnel was made.
    assert not [p for p in ports if listening(p)], ports
    assert not [d for d in os.listdir("/run/stillpoint") if vm.uuid in d]


def test_missing_client_certificates_refused(bins, tls, vm, tmp_path):
    before = sp_vm.checkpoints(vm.dom)
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(os.path.join(tls.client, "ca-cert.pem"), partial)
    events = sp_vm.EventWatcher(vm.uuid)
    try:
        for d, missing in ((tmp_path / "none", "ca-cert.pem"), (partial, "client-cert.pem")):
            r = backup(bins, vm, tmp_path / "points", "--set", "transport=tcp", "--set",
                       f"tls_client_dir={d}")
            assert r.rc == 3, r
            assert f"this machine has no NBD TLS client certificate: {d}/{missing} is missing" \
                in r.err, r
            assert f"client-key.pem in {d}, or set tls_client_dir" in r.err, r
        c = run([bins.stillpoint, "check", vm.name, "--set", "transport=tcp", "--set",
                 f"tls_client_dir={partial}", "--json"])
        assert c.rc == 3 and c.json()["hypervisor"]["tls_ready"] is False, c
        no_change(vm, before, events)
    finally:
        events.close()


def test_missing_server_certificate_refused(bins, tls, vm, tmp_path):
    before = sp_vm.checkpoints(vm.dom)
    cert = os.path.join(TLS_DIR, "server-cert.pem")
    os.rename(cert, cert + ".away")
    events = sp_vm.EventWatcher(vm.uuid)
    try:
        r = backup(bins, vm, tmp_path, *tcp(tls))
        assert r.rc == 3, r
        assert f"the hypervisor localhost has no NBD TLS certificate {cert}" in r.err, r
        assert "backup_tls_x509_cert_dir in its qemu.conf and restart libvirtd" in r.err, r
        # The default transport does not need it.
        c = run([bins.stillpoint, "check", vm.name, "--json"])
        assert c.rc == 0 and c.json()["hypervisor"]["tls_ready"] is False, c
        no_change(vm, before, events)
    finally:
        os.rename(cert + ".away", cert)
        events.close()


def test_server_key_unreadable_by_qemu_refused(bins, tls, vm, tmp_path):
    """QEMU, not libvirt, opens the key when the job starts: without this
    check begin would fail inside the pause."""
    before = sp_vm.checkpoints(vm.dom)
    key = os.path.join(TLS_DIR, "server-key.pem")
    os.chmod(key, 0o600)
    events = sp_vm.EventWatcher(vm.uuid)
    try:
        r = backup(bins, vm, tmp_path, *tcp(tls))
        assert r.rc == 3, r
        assert f"QEMU's user libvirt-qemu on localhost cannot read the NBD TLS key {key}" in r.err
        assert f"`chgrp libvirt-qemu {key}; chmod 0640 {key}`" in r.err, r
        no_change(vm, before, events)
    finally:
        os.chmod(key, 0o640)
        events.close()


def test_busy_port_skipped_full_range_refused(bins, tls, vm, tmp_path):
    port = free_port_pair()
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", port))
    taken.listen()
    log = tmp_path / "uris"
    try:
        r = backup(bins, vm, tmp_path / "points", "--level", "full",
                   *tcp(tls, "--set", f"nbd_port_min={port}", "--set", f"nbd_port_max={port + 1}",
                        "--set", f"copier={URI_LOG_COPIER}"), env={"SPTEST_URI_LOG": str(log)})
        assert r.rc == 0, r
        assert {u.split("/")[2] for u in logged_uris(log)} == {f"127.0.0.1:{port + 1}"}
        before = sp_vm.checkpoints(vm.dom)
        events = sp_vm.EventWatcher(vm.uuid)
        try:
            r = backup(bins, vm, tmp_path / "points", *tcp(tls, "--set", f"nbd_port_min={port}",
                                                           "--set", f"nbd_port_max={port}"))
            assert r.rc == 3, r
            assert f"all 1 ports of nbd_port_min..nbd_port_max ({port}-{port}) on 127.0.0.1 " \
                "are taken" in r.err, r
            no_change(vm, before, events)
        finally:
            events.close()
    finally:
        taken.close()


def test_copier_refused_by_server_leaves_no_checkpoint(bins, tls, vm, tmp_path):
    """A client certificate of another CA: preflight sees files, QEMU's TLS
    server refuses the copier. The job ends, its port closes, the new
    checkpoint goes, the VM runs on."""
    other = sp_tls.CA("another CA")
    try:
        client = other.client_dir(os.path.join(other.dir, "client"))
        before = sp_vm.checkpoints(vm.dom)
        log = tmp_path / "uris"
        r = backup(bins, vm, tmp_path / "points", "--level", "full", "--set", "transport=tcp",
                   "--set", f"tls_client_dir={client}", "--set", f"copier={URI_LOG_COPIER}",
                   env={"SPTEST_URI_LOG": str(log)})
        assert r.rc == 1, r
        assert "the copier: failed for" in r.err and "certificate" in r.err, r
        assert vm.is_running() and vm.dom.jobInfo()[0] == 0
        assert sp_vm.checkpoints(vm.dom) == before
        port = int(logged_uris(log)[0].split(":")[2].split("/")[0])
        assert not listening(port)
    finally:
        shutil.rmtree(other.dir, ignore_errors=True)


def test_coordinator_killed_port_closes(bins, tls, vm, tmp_path):
    """Nothing listens longer than the job: when the coordinator dies (-9)
    during the copy, the guardian ends the job, and QEMU's TLS port closes
    with it."""
    port = free_port_pair()
    before = sp_vm.checkpoints(vm.dom)
    pids = tmp_path / "copier-pids"
    slow = f'echo $$ >> "$SPTEST_PIDS"; sleep 30; exec "{Bins.copy}"'
    p = subprocess.Popen([bins.stillpoint, "backup", vm.name, "--target", str(tmp_path),
                          *tcp(tls, "--set", f"nbd_port_min={port}", "--set",
                               f"nbd_port_max={port}", "--set", f"copier={slow}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, SPTEST_PIDS=str(pids)))
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not listening(port) and p.poll() is None:
            time.sleep(0.05)
        assert listening(port), p.poll()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        deadline = time.time() + 15
        while time.time() < deadline and (listening(port) or vm.dom.jobInfo()[0] != 0):
            time.sleep(0.1)
        assert not listening(port)
        assert vm.dom.jobInfo()[0] == 0 and vm.is_running()
        deadline = time.time() + 5
        while time.time() < deadline and sp_vm.checkpoints(vm.dom) != before:
            time.sleep(0.1)
        assert sp_vm.checkpoints(vm.dom) == before
    finally:
        if p.poll() is None:
            p.kill()
        # The orphaned copiers would only fail in 30 s: end them, by their own PIDs.
        for pid in (pids.read_text().split() if pids.exists() else []):
            subprocess.run(["pkill", "-KILL", "-P", pid], capture_output=True)  # its sleep
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
