"""A throwaway single-node Ceph cluster for the end-to-end tests and the
benchmarks: Debian 12's ceph-mon, ceph-mgr and ceph-osd, one of each, on
127.0.0.1, with BlueStore on a sparse file, pool size 1 and cephx on.

Everything lives in one private directory (configuration, keyrings, the
mon's store, the OSD's block file, admin sockets, logs, crash reports):
no systemd, no kernel module (clients use librbd/librados, never krbd),
nothing in /etc/ceph or /var/lib/ceph. The daemons run in the foreground
as children of the test process and get SIGTERM if it dies
(PR_SET_PDEATHSIG), so a killed pytest leaves no daemon behind.

A dead OSD blocks every client forever by default (docs/facts.md,
"Ceph"): the configuration sets client op timeouts, and every client
command here runs with a hard timeout of its own as well.

    with sp_ceph.Cluster() as c:
        c.rbd("create", "--size", "16M", f"{c.pool}/img")
        c.qemu_rbd("img")   # 'rbd:sp/img:id=...:conf=...' for qemu-img

Measured on the 2-core test machine (see Cluster.start): ready in about
10-15 s including the pool; the three daemons hold about 0.5 GB.
"""
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

# Client commands: long enough for a loaded 2-core machine, short enough
# that a hung cluster fails a test instead of CI.
CLIENT_TIMEOUT = 60
# What the clients' own op timeouts are (seconds): an operation on a dead
# OSD or mon fails with ETIMEDOUT after this instead of blocking.
OP_TIMEOUT = 20
DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd")
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: SIGTERM when the test process goes, however it goes."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held together while picked,
    so they differ; a race with another program remains and shows as a mon
    that does not start)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def missing_packages():
    """The programs the cluster needs that are not installed."""
    need = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "ceph-authtool", "monmaptool", "rbd",
            "rados")
    return [p for p in need if not shutil.which(p)]


def rss_kib(pid):
    """Resident set of a process, KiB (VmRSS of /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CephError(RuntimeError):
    pass


class Cluster:
    """One mon (a), one mgr (x), one OSD (0), a pool `pool` initialised for
    RBD, and a client `client.<user>` with the RBD profile on that pool only
    (what docs/design.md asks of a site's stillpoint user)."""

    def __init__(self, base="/var/tmp", pool="sp", user="stillpoint", osd_size_gib=20):
        self.pool = pool
        self.user = user
        # Short: admin socket paths must fit a sockaddr_un (108 bytes).
        self.dir = tempfile.mkdtemp(prefix="sp-ceph-", dir=base)
        os.chmod(self.dir, 0o700)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.admin_keyring = os.path.join(self.dir, "admin.keyring")
        self.keyring = os.path.join(self.dir, f"client.{user}.keyring")
        self.fsid = str(uuid.uuid4())
        self.osd_size_gib = osd_size_gib
        self.procs = {}
        self.timings = {}
        self.log_dir = os.path.join(self.dir, "log")

    # -- running things --------------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        env["CEPH_CONF"] = self.conf
        return env

    def sh(self, *argv, timeout=CLIENT_TIMEOUT, input=None, check=True):
        """A client or tool command, never through a shell, with a hard timeout."""
        try:
            cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                input=input, env=self._env())
        except subprocess.TimeoutExpired as e:
            raise CephError(f"{argv}: no answer in {timeout} s (cluster hung?)") from e
        if check and cp.returncode != 0:
            raise CephError(f"{argv}: rc={cp.returncode}\n{cp.stdout}{cp.stderr}")
        return cp

    def ceph(self, *args, timeout=CLIENT_TIMEOUT, input=None):
        """`ceph` as client.admin; returns stdout."""
        return self.sh("ceph", "--conf", self.conf, "--keyring", self.admin_keyring,
                       "--connect-timeout", str(OP_TIMEOUT), *args, timeout=timeout,
                       input=input).stdout

    def ceph_json(self, *args):
        return json.loads(self.ceph(*args, "--format", "json"))

    def client_args(self):
        """--conf, --id and --keyring of the test user, for rbd and rados."""
        return ["--conf", self.conf, "--id", self.user, "--keyring", self.keyring]

    def rbd(self, *args, timeout=CLIENT_TIMEOUT, check=True):
        """`rbd` as the test user (RBD profile on the pool); returns the result."""
        return self.sh("rbd", *self.client_args(), *args, timeout=timeout, check=check)

    def rados(self, *args, timeout=CLIENT_TIMEOUT, check=True, input=None):
        """`rados -p <pool>` as the test user."""
        return self.sh("rados", *self.client_args(), "-p", self.pool, *args, timeout=timeout,
                       check=check, input=input)

    def qemu_rbd(self, image, snap=None):
        """The rbd: file name of an image for qemu-img and QEMU, as the test
        user (QEMU's rbd driver takes id, conf and keyring as options).
        image is relative to the pool ('img' or 'ns/img')."""
        name = f"{self.pool}/{image}" + (f"@{snap}" if snap else "")
        return f"rbd:{name}:id={self.user}:conf={self.conf}:keyring={self.keyring}"

    def _spawn(self, name, argv):
        log = open(os.path.join(self.log_dir, f"{name}.out"), "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=self._env(),
                                 preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs[name] = p
        return p

    def _check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = self.log_tail(name)
                raise CephError(f"{name} exited with {p.returncode}:\n{tail}")

    def log_tail(self, name, lines=30):
        out = []
        for path in (os.path.join(self.log_dir, f"{name}.out"),
                     os.path.join(self.log_dir, f"ceph-{name.replace('-', '.')}.log")):
            try:
                with open(path, errors="replace") as f:
                    out += f.read().splitlines()[-lines:]
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def _wait(self, what, cond, timeout):
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if cond():
                    return
            except CephError:
                pass
            if time.monotonic() > deadline:
                raise CephError(f"{what}: not reached in {timeout} s\n" +
                                "\n".join(self.log_tail(n, 10) for n in self.procs))
            time.sleep(0.25)

    # -- building and starting -------------------------------------------------

    def _write_conf(self, v2, v1):
        d = self.dir
        conf = f"""[global]
fsid = {self.fsid}
mon_host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public_addr = 127.0.0.1
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
run_dir = {d}/run
admin_socket = {d}/run/$cluster-$name.asok
log_file = {d}/log/$cluster-$name.log
mon_cluster_log_file = {d}/log/$cluster.log
crash_dir = {d}/crash
pid_file =
log_to_stderr = false
err_to_stderr = true
# One OSD: one replica, and no warning about it.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_allow_pool_delete = true
osd_crush_chooseleaf_type = 0
# A dead OSD or mon must fail a client's operation, not block it forever.
rados_osd_op_timeout = {OP_TIMEOUT}
rados_mon_op_timeout = {OP_TIMEOUT}
client_mount_timeout = {OP_TIMEOUT}
# ... and show as down soon.
osd_beacon_report_interval = 5
mon_osd_report_timeout = 20
# Small: a test cluster on a shared 2-core machine.
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
mon_data_avail_warn = 5
mon_data_avail_crit = 2
mgr_initial_modules =
# Only the modules RBD needs (see _mgr_modules): loading all 28 takes
# 20-30 s and 300 MB on a loaded 2-core machine.
mgr_module_path = {d}/mgr-modules

[mon.a]
mon_data = {d}/mon/a

[mgr.x]
mgr_data = {d}/mgr/x

[osd.0]
osd_data = {d}/osd/0
osd_objectstore = bluestore
# Not inside osd_data: mkfs makes osd_data/block a symlink to it
# ("Too many levels of symbolic links" otherwise).
bluestore_block_path = {d}/osd/block.0
bluestore_block_create = true
bluestore_block_size = {self.osd_size_gib << 30}
bluestore_block_db_create = false
bluestore_block_wal_create = false
"""
        with open(os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(conf)

    def _mkdirs(self):
        for sub in ("run", "log", "crash", "mon/a", "mgr/x", "osd/0"):
            path = os.path.join(self.dir, sub)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o700)

    def _keyring(self, path, name, *caps):
        self.sh("ceph-authtool", "--create-keyring", path, "--gen-key", "-n", name, *caps)
        os.chmod(path, 0o600)

    def _mon(self, v2, v1):
        mon_keyring = os.path.join(self.dir, "mon.keyring")
        monmap = os.path.join(self.dir, "monmap")
        self._keyring(mon_keyring, "mon.", "--cap", "mon", "allow *")
        self._keyring(self.admin_keyring, "client.admin", "--cap", "mon", "allow *", "--cap",
                      "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        self.sh("ceph-authtool", mon_keyring, "--import-keyring", self.admin_keyring)
        self.sh("monmaptool", "--create", "--addv", "a",
                f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]", "--fsid", self.fsid, monmap)
        self.sh("ceph-mon", "--conf", self.conf, "--mkfs", "-i", "a", "--monmap", monmap,
                "--keyring", mon_keyring)
        self._spawn("mon-a", ["ceph-mon", "--conf", self.conf, "-f", "-i", "a"])
        self._wait("the mon answering", lambda: self.ceph("mon", "stat", timeout=15) != "", 60)

    # The mgr's Python modules the tests need: its own helpers, status
    # (ceph -s) and rbd_support (rbd's background tasks).
    MGR_MODULES = ("mgr_module.py", "mgr_util.py", "status", "rbd_support", "balancer", "crash",
                   "devicehealth", "orchestrator", "pg_autoscaler", "progress", "telemetry",
                   "volumes")

    def _mgr_modules(self):
        d = os.path.join(self.dir, "mgr-modules")
        os.mkdir(d, 0o700)
        for m in self.MGR_MODULES:
            os.symlink(os.path.join("/usr/share/ceph/mgr", m), os.path.join(d, m))

    def _mgr(self):
        self._mgr_modules()
        keyring = os.path.join(self.dir, "mgr/x/keyring")
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *",
                  "mds", "allow *", "-o", keyring)
        os.chmod(keyring, 0o600)
        self._spawn("mgr-x", ["ceph-mgr", "--conf", self.conf, "-f", "-i", "x"])

    def _osd(self):
        osd_uuid = str(uuid.uuid4())
        secret = self.sh("ceph-authtool", "--gen-print-key").stdout.strip()
        osd_id = self.ceph("osd", "new", osd_uuid, "-i", "-",
                           input=json.dumps({"cephx_secret": secret})).strip()
        if osd_id != "0":
            raise CephError(f"expected osd.0, the mon made osd.{osd_id}")
        keyring = os.path.join(self.dir, "osd/0/keyring")
        with open(os.open(keyring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(f"[osd.0]\n\tkey = {secret}\n")
        self.sh("ceph-osd", "--conf", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid,
                "--keyring", keyring, timeout=120)
        self._spawn("osd-0", ["ceph-osd", "--conf", self.conf, "-f", "-i", "0"])

        def osd_up():
            return self.ceph_json("osd", "stat").get("num_up_osds") == 1
        self._wait("osd.0 up", osd_up, 90)

    def _pool(self):
        t0 = time.monotonic()
        self.ceph("osd", "pool", "create", self.pool, "8", "8")
        self.timings["pool_create"] = time.monotonic() - t0
        # Clone format 2 (restore --instant: clones of unprotected snapshots
        # that prune may still remove) needs every client to be Mimic or
        # newer; a new Pacific cluster still allows older ones.
        self.ceph("osd", "set-require-min-compat-client", "mimic")
        self.sh("rbd", "--conf", self.conf, "--keyring", self.admin_keyring, "pool", "init",
                self.pool)
        # The user a site gives stillpoint: RBD images and RADOS objects of
        # this pool, nothing else.
        out = self.ceph("auth", "get-or-create", f"client.{self.user}", "mon", "profile rbd",
                        "osd", f"profile rbd pool={self.pool}", "mgr",
                        f"profile rbd pool={self.pool}")
        with open(os.open(self.keyring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(out)

        self.timings["pool_init"] = time.monotonic() - t0

        def clean():
            pgs = self.ceph_json("pg", "stat").get("pg_summary", {})
            total = pgs.get("num_pgs", 0)
            summary = pgs.get("num_pg_by_state", [])
            clean = sum(s["num"] for s in summary if s["name"] == "active+clean")
            return total > 0 and clean == total
        self._wait("every PG active+clean", clean, 60)

    def start(self):
        """Builds and starts the cluster; returns when the pool takes writes.
        timings: seconds per step; raises CephError with the daemons' log
        tails when a step fails (and stops what was started)."""
        try:
            t0 = time.monotonic()
            self._mkdirs()
            v2, v1 = free_ports(2)
            self._write_conf(v2, v1)
            self._mon(v2, v1)
            self.timings["mon"] = time.monotonic() - t0
            self._mgr()
            self.timings["mgr"] = time.monotonic() - t0
            self._osd()
            self.timings["osd"] = time.monotonic() - t0
            self._pool()
            self.timings["ready"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def memory_kib(self):
        """Resident memory of each daemon, KiB."""
        return {name: rss_kib(p.pid) for name, p in self.procs.items() if p.poll() is None}

    # -- faults ------------------------------------------------------------------

    def kill_osd(self):
        """SIGKILL to the OSD: what a crashed storage node looks like."""
        p = self.procs.get("osd-0")
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=30)

    def start_osd(self):
        """Starts the OSD again after kill_osd() and waits until it is up."""
        self._spawn("osd-0", ["ceph-osd", "--conf", self.conf, "-f", "-i", "0"])
        self._wait("osd.0 up again",
                   lambda: self.ceph_json("osd", "stat").get("num_up_osds") == 1, 90)

    # -- stopping ----------------------------------------------------------------

    def stop(self):
        """Stops the daemons (OSD first, mon last: the others report to it)
        and removes the directory. SIGTERM, then SIGKILL after 20 s."""
        t0 = time.monotonic()
        for name in ("osd-0", "mgr-x", "mon-a"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self.timings["stop"] = time.monotonic() - t0
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
