"""The single-node Ceph cluster of the tests (sp_ceph.py) and QEMU's rbd
driver against it: what the RBD writer and the RADOS point store are tested
on."""
import subprocess

import sp_ceph
import sp_nbd
from sp_nbd import MiB

# A size that is not a multiple of RBD's 4 MiB objects nor of 64 KiB.
ODD_SIZE = 20 * MiB + 3584


def qemu_img(*args, timeout=sp_ceph.CLIENT_TIMEOUT):
    cp = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout)
    return cp.returncode, cp.stdout + cp.stderr


def test_cluster_is_small_and_healthy(ceph):
    """The cluster came up within its bounds, with cephx on and pool size 1,
    and the test user reaches the pool but not another one."""
    t, mem = ceph.timings, ceph.memory_kib()
    print(f"ceph: ready in {t['ready']:.1f} s, daemons RSS {sum(mem.values()) // 1024} MiB {mem}")
    assert t["ready"] < 120, t
    assert set(mem) == {"mon-a", "mgr-x", "osd-0"} and sum(mem.values()) < 1536 * 1024, mem
    assert ceph.ceph_json("osd", "pool", "get", ceph.pool, "size")["size"] == 1
    ceph.rados("put", "sp-smoke", "-", input="hello")
    assert ceph.rados("get", "sp-smoke", "-").stdout == "hello"
    ceph.rados("rm", "sp-smoke")
    # cephx: without the key, or without authentication, nothing works...
    for extra in (["--keyring", "/dev/null"], ["--auth-client-required", "none"]):
        r = ceph.sh("rados", "--conf", ceph.conf, "--id", ceph.user, *extra,
                    "--client-mount-timeout", "5", "-p", ceph.pool, "ls", check=False)
        assert r.returncode != 0, (extra, r.stdout, r.stderr)
    # ... and the user has no rights on another pool.
    ceph.ceph("osd", "pool", "create", "sp-other", "8", "8")
    try:
        r = ceph.sh("rados", *ceph.client_args(), "-p", "sp-other", "put", "x", "-",
                    input="x", check=False)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
    finally:
        ceph.ceph("osd", "pool", "rm", "sp-other", "sp-other", "--yes-i-really-really-mean-it")


def test_qemu_img_roundtrip(ceph, tmp_path):
    """qemu-img writes an image into RBD and reads it back equal, and an RBD
    snapshot keeps the image as it was when taken."""
    s = sp_nbd.LocalSource(str(tmp_path), ODD_SIZE)
    rnd = sp_nbd.random_file(str(tmp_path / "rand"), 2 * MiB, seed=11)
    s.io(f"write -s {rnd} 1M 2M", "write -P 0x5a 7M 3M", f"write -P 0x33 {ODD_SIZE - 512} 512")
    name = "smoke-roundtrip"
    dest = ceph.qemu_rbd(name)
    try:
        rc, out = qemu_img("convert", "-f", "qcow2", "-O", "raw", s.image, dest)
        assert rc == 0, out
        info = ceph.rbd("info", "--format", "json", f"{ceph.pool}/{name}").stdout
        assert f'"size":{ODD_SIZE}' in info.replace(" ", ""), info
        rc, out = qemu_img("compare", "-f", "qcow2", "-F", "raw", s.image, dest)
        assert rc == 0, out

        ceph.rbd("snap", "create", f"{ceph.pool}/{name}@p0")
        s.io("write -P 0x77 8M 1M")
        rc, out = qemu_img("convert", "-n", "-f", "qcow2", "-O", "raw", s.image, dest)
        assert rc == 0, out
        rc, out = qemu_img("compare", "-f", "qcow2", "-F", "raw", s.image, dest)
        assert rc == 0, out
        # The snapshot still reads as before the second write.
        rc, out = qemu_img("compare", "-f", "qcow2", "-F", "raw", s.image,
                           ceph.qemu_rbd(name, snap="p0"))
        assert rc == 1 and "8388608" in out, out
    finally:
        ceph.rbd("snap", "purge", f"{ceph.pool}/{name}", check=False)
        ceph.rbd("rm", f"{ceph.pool}/{name}", check=False)
