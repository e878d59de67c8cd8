"""Faults survived (issue 16, docs/design.md "Failures survived"): the
coordinator killed at every step of a point, its guardian killed in each of
its states; against the tiny Linux guest, so "thawed" is the guest agent's
word and not our own.

The kill matrix: for each test failpoint (STILLPOINT_TEST_FAILPOINT, see
stillpoint(1)) the coordinator SIGKILLs itself there; then the VM runs, the
agent reports thawed, no backup job is active, every checkpoint stillpoint
made belongs to a complete point (none that a later incremental would build
on wrongly), and every complete point verifies. Each run's own preflight is
the proof that the previous kill left nothing that refuses the next backup;
after the matrix one `backup --level auto` must succeed as an incremental
and verify. The guardian matrix: the guardian SIGKILLed in each state, the
coordinator goes on alone, says "guardian lost", and the point completes.

One shared guest for all of it (each run is an incremental of a few MiB),
and each matrix printed as a table (pytest -s shows it).
"""
import os
import pathlib
import signal
import subprocess
import tempfile
import time

import libvirt
import pytest

import sp_guest
import sp_points as spp
import sp_vm
from conftest import run
from sp_guest import AgentError, agent

pytestmark = pytest.mark.slow

# Every step of run_point, in protocol order.
STEPS = ["preflight", "plan", "prepare", "guardian", "freeze", "pause", "capture", "begin",
         "resume", "thaw", "save-state", "copy", "end-job", "finish-before-rename",
         "finish-after-rename", "prune"]
# The guardian's states: watching, frozen, frozen+paused, job begun while
# paused, job begun after resume/thaw, job ended, point renamed.
GUARDIAN_STEPS = ["guardian", "freeze", "pause", "begin", "thaw", "copy", "end-job",
                  "finish-before-rename"]
SETS = ("pause_max_ms=30000", "freeze=required", "keep=0")


def argv(bins, guest, target, level="auto", sets=()):
    a = [bins.stillpoint, "backup", guest.name, "--target", str(target), "--level", level]
    for s in (*SETS, *sets):
        a += ["--set", s]
    return a


def run_with_failpoint(bins, guest, target, tmp_path, fp, timeout=180):
    """The coordinator with STILLPOINT_TEST_FAILPOINT=fp; output to files (a
    guardian outliving a killed coordinator keeps stderr open)."""
    errf = tmp_path / f"stderr-{fp.replace(':', '-')}"
    with open(errf, "w") as err:
        p = subprocess.Popen(argv(bins, guest, target), stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": fp})
    try:
        rc = p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, errf.read_text()


def freeze_status(dom):
    try:
        return agent(dom, {"execute": "guest-fsfreeze-status"}, timeout=2)
    except AgentError as e:
        return f"agent: {e}"


def state_of(guest, target, before):
    """What a fault must leave behind, as a dict of observations."""
    done, partial = spp.points(target / guest.name)
    ours = set(sp_vm.checkpoints(guest.dom)) - before
    state, _ = guest.dom.state()
    return {
        "running": state == libvirt.VIR_DOMAIN_RUNNING,
        "thawed": freeze_status(guest.dom) == "thawed",
        "no_job": guest.dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE,
        # Every checkpoint we made is a complete point's, and every complete
        # point still has its checkpoint (the chain goes on incrementally).
        "checkpoints_ok": ours == set(done),
        "done": done,
        "partial": partial,
        "stray_checkpoints": sorted(ours - set(done)),
    }


def settle(guest, target, before, timeout=20):
    """The guardian works after the coordinator is gone: wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        s = state_of(guest, target, before)
        ok = s["running"] and s["thawed"] and s["no_job"] and s["checkpoints_ok"]
        if ok or time.monotonic() > deadline:
            return s
        time.sleep(0.25)


def guardians_and_job_dirs(guest):
    """The guardian processes of the guest's runs still alive, and its jobs'
    run directories still there (/run/stillpoint/<uuid>-<point id>)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"__guardian" in args and guest.dom.UUIDString().encode() in args:
            pids.append(int(d))
    dirs = [n for n in (os.listdir("/run/stillpoint") if os.path.isdir("/run/stillpoint") else [])
            if n.startswith(guest.dom.UUIDString() + "-")]
    return pids, dirs


def guardian_gone(guest, dirs_before, dirs_too, timeout=20):
    """No guardian outlives its use: once the coordinator is dead, it puts
    right what it must, removes the job's directories and leaves.  The
    guardians left and the job directories new since dirs_before."""
    deadline = time.monotonic() + timeout
    while True:
        pids, dirs = guardians_and_job_dirs(guest)
        dirs = sorted(set(dirs) - set(dirs_before))
        if (not pids and (not dirs or not dirs_too)) or time.monotonic() > deadline:
            return pids, dirs
        time.sleep(0.25)


def verify_all(bins, target, guest):
    done, _ = spp.points(target / guest.name)
    for pid in done:
        r = run([bins.stillpoint, "verify", str(target / guest.name / pid)], timeout=300)
        assert r.rc == 0, (pid, r)


def table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: " | ".join(str(x).ljust(w) for x, w in zip(r, widths))
    print(f"\n{title}\n{line(header)}\n{'-+-'.join('-' * w for w in widths)}")
    for r in rows:
        print(line(r))


@pytest.fixture
def clean_guest(tiny_guest):
    """The shared guest, left with none of our checkpoints."""
    before = set(sp_vm.checkpoints(tiny_guest.dom))
    yield tiny_guest, before
    for name in set(sp_vm.checkpoints(tiny_guest.dom)) - before:
        try:
            tiny_guest.dom.checkpointLookupByName(name).delete()
        except libvirt.libvirtError:
            pass


def test_kill_matrix(bins, clean_guest, tmp_path):
    guest, before = clean_guest
    target = tmp_path / "points"
    rows, bad = [], []
    for step in STEPS:
        t0 = time.monotonic()
        _, dirs_before = guardians_and_job_dirs(guest)
        rc, err = run_with_failpoint(bins, guest, target, tmp_path, f"{step}:kill")
        s = settle(guest, target, before)
        fired = f"test failpoint {step}: kill" in err
        # From prepare (the guardian starts while the scratch files are
        # made) to the rename, a guardian saw the death: it removed the
        # job's directories and left.  At prune it had been told to quit.
        guarded = STEPS.index("prepare") <= STEPS.index(step) <= STEPS.index("finish-after-rename")
        pids, dirs = guardian_gone(guest, dirs_before, guarded)
        ok = (fired and rc == -9 and s["running"] and s["thawed"] and s["no_job"]
              and s["checkpoints_ok"] and not pids and (not guarded or not dirs))
        rows.append([step, rc, "yes" if fired else "NO", s["running"], s["thawed"], s["no_job"],
                     s["checkpoints_ok"], len(s["done"]), len(s["partial"]), len(pids),
                     len(dirs), f"{time.monotonic() - t0:.1f}", "ok" if ok else "FAIL"])
        if not ok:
            bad.append((step, rc, s, pids, dirs, err[-2000:]))
    table("coordinator SIGKILLed at each failpoint",
          ["failpoint", "rc", "fired", "running", "thawed", "no job", "checkpoints ok",
           "complete", "partial", "guardians", "job dirs", "s", "outcome"], rows)
    assert not bad, bad
    # The kill after the rename leaves a complete point with its checkpoint:
    # the next auto is an incremental on it, and the whole chain verifies.
    r = run(argv(bins, guest, target) + ["--json"], timeout=300)
    assert r.rc == 0, r
    assert r.json()["level"] == "inc", r.json()["level"]
    verify_all(bins, target, guest)
    s = state_of(guest, target, before)
    assert s["checkpoints_ok"] and s["no_job"] and s["running"] and s["thawed"], s


def test_guardian_kill_matrix(bins, clean_guest, tmp_path):
    guest, before = clean_guest
    target = tmp_path / "points"
    rows, bad = [], []
    for step in GUARDIAN_STEPS:
        rc, err = run_with_failpoint(bins, guest, target, tmp_path, f"{step}:kill-guardian")
        s = settle(guest, target, before)
        lost = "guardian lost" in err
        # Killed before it was told anything more, the guardian's pipe is
        # never written again for some steps: "lost" is said only when a
        # word meets the dead pipe.
        ok = rc == 0 and s["running"] and s["thawed"] and s["no_job"] and s["checkpoints_ok"]
        rows.append([step, rc, "yes" if lost else "no", s["running"], s["thawed"], s["no_job"],
                     s["checkpoints_ok"], len(s["done"]), "ok" if ok else "FAIL"])
        if not ok:
            bad.append((step, rc, s, err[-2000:]))
    table("guardian SIGKILLed in each state (the coordinator goes on)",
          ["killed at", "rc", "guardian lost", "running", "thawed", "no job", "checkpoints ok",
           "complete", "outcome"], rows)
    assert not bad, bad
    # Killed before the window, the coordinator must have noticed on its
    # first word to it (the pause).
    assert rows[0][2] == "yes"
    verify_all(bins, target, guest)


def test_dead_run_cleaned_by_next(bins, clean_guest, tmp_path):
    """Coordinator and guardian both SIGKILLed during the copy (the OOM killer
    taking both): the backup job and its checkpoint stay behind. The next run
    holds the VM's lock, so no live run owns them: its preflight ends the job,
    deletes the checkpoint, says so, and takes the point."""
    guest, before = clean_guest
    target = tmp_path / "points"
    r = run(argv(bins, guest, target), timeout=300)
    assert r.rc == 0, r
    rc, err = run_with_failpoint(bins, guest, target, tmp_path, "copy:kill-both")
    assert rc == -9, err
    time.sleep(1)
    s = state_of(guest, target, before)
    # The fault is real: a job and a stray checkpoint nobody will clean.
    assert not s["no_job"] and len(s["stray_checkpoints"]) == 1, s
    stray = s["stray_checkpoints"][0]
    r = run(argv(bins, guest, target) + ["--json"], timeout=300)
    assert r.rc == 0, r
    assert f"ended the backup job of point {stray}" in r.err, r.err
    assert f"deleted checkpoint {stray}" in r.err, r.err
    assert r.json()["level"] == "inc"
    s = state_of(guest, target, before)
    assert s["no_job"] and s["checkpoints_ok"] and s["running"] and s["thawed"], s
    verify_all(bins, target, guest)


# -- the frozen window with pause = off -------------------------------------------

def stopped(p):
    return open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.parametrize("step,want_rc,said", [
    # Inside the window, before the job begins: the point is not consistent.
    ("capture", 1, "the freeze overran pause_max_ms (pause = off) and the guardian thawed"),
    # After the job began, before our own thaw: the point stands, with a warning.
    ("resume", 0, "the guardian thawed the guest first"),
])
def test_freeze_bounded_with_pause_off(bins, clean_guest, tmp_path, step, want_rc, said):
    """pause = off leaves only the freeze holding the guest still. The
    coordinator is stopped (SIGSTOP, a stalled run) inside the frozen span;
    the guardian thaws the guest once pause_max_ms is over, though the
    coordinator lives. Let go, the coordinator fails the point (or warns,
    when the job had begun frozen) and leaves nothing behind."""
    guest, before = clean_guest
    target = tmp_path / "points"
    max_ms = 5000
    errf = tmp_path / f"stderr-{step}"
    with open(errf, "w") as err:
        p = subprocess.Popen(argv(bins, guest, target, level="full",
                                  sets=("pause=off", f"pause_max_ms={max_ms}")),
                             stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": f"{step}:hold"})
    try:
        deadline = time.monotonic() + 120
        while not stopped(p):
            assert p.poll() is None and time.monotonic() < deadline, errf.read_text()
            time.sleep(0.05)
        t_held = time.monotonic()
        first = freeze_status(guest.dom)
        status = first
        while status != "thawed" and time.monotonic() - t_held < max_ms / 1000 + 60:
            time.sleep(0.2)
            status = freeze_status(guest.dom)
        t_thawed = time.monotonic() - t_held
        assert stopped(p)  # the guardian did it, not the coordinator
        p.send_signal(signal.SIGCONT)
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = errf.read_text()
    print(f"\n{step}: frozen when held: {first}; thawed {t_thawed:.1f} s after the hold "
          f"(pause_max_ms {max_ms})")
    assert first == "frozen", (first, err)  # the hold is inside the frozen span
    assert status == "thawed", (status, err)
    assert "guardian: the freeze overran pause_max_ms (pause = off): thawed" in err, err
    assert rc == want_rc and said in err, (rc, err)
    s = settle(guest, target, before)
    assert s["running"] and s["thawed"] and s["no_job"] and s["checkpoints_ok"], (s, err)
    assert len(s["done"]) == (1 if want_rc == 0 else 0), s


# -- full disks ------------------------------------------------------------------

@pytest.fixture
def small_fs():
    """Mounts a tmpfs of the given size (0711: QEMU's user passes through it)
    under /var/tmp; unmounted and removed afterwards. Returns a function
    mount(size) -> Path and keeps the mounts for resizing."""
    mounts = []

    def mount(size):
        d = tempfile.mkdtemp(prefix="sptest-faults-fs-", dir="/var/tmp")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", d],
                       check=True)
        mounts.append(d)
        return pathlib.Path(d)

    yield mount
    for d in mounts:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def resize(path, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def test_target_fills_mid_copy(bins, make_vm, small_fs):
    """The target's file system fills while the copiers write: exit 1, the VM
    runs on, no job and no checkpoint are left, the point stays .partial;
    with room again the next run succeeds and verifies."""
    vm = make_vm(tag="faults-full")
    for target, off in (("vda", 0), ("vdb", 0)):
        vm.write(target, 0x5a, off, 24 * sp_vm.MiB)
    target = small_fs("12M")
    before = set(sp_vm.checkpoints(vm.dom))
    sets = ("pause_max_ms=30000", "keep=0", "freeze=off")
    a = [bins.stillpoint, "backup", vm.name, "--target", str(target)]
    for s in sets:
        a += ["--set", s]
    r = run(a, timeout=300)
    assert r.rc == 1, r
    assert "No space left on device" in r.err or "no space" in r.err.lower(), r.err
    assert vm.is_running()
    assert vm.dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE
    assert set(sp_vm.checkpoints(vm.dom)) == before
    done, partial = spp.points(target / vm.name)
    assert done == [] and len(partial) == 1, (done, partial)
    resize(target, "256M")
    r = run(a + ["--json"], timeout=300)
    assert r.rc == 0, r
    assert r.json()["level"] == "full"
    v = run([bins.stillpoint, "verify", r.json()["path"]], timeout=300)
    assert v.rc == 0, v


def test_scratch_fills_while_guest_writes(bins, guest_conn, tmp_path, small_fs):
    """scratch_dir on a small file system: preflight warns; the guest
    overwrites its disk during the copy, QEMU cannot save the old blocks, the
    guest's write fails and the VM is paused on an I/O error. stillpoint sees
    it, stops the copy, aborts the job (dropping the copy-before-write
    filter), resumes the VM and fails the point: exit 1, the VM runs, no job,
    no checkpoint; the next run (scratch_dir with room) is an incremental.

    A guest of its own, started after the mount: QEMU lives in a mount
    namespace of its own and sees no file system mounted after its start."""
    scratch = small_fs("6M")
    with sp_guest.make_tiny_guest(guest_conn) as guest:
        scratch_fills(bins, guest, tmp_path, scratch)


def scratch_fills(bins, guest, tmp_path, scratch):
    before = set(sp_vm.checkpoints(guest.dom))
    target = tmp_path / "points"
    r = run(argv(bins, guest, target), timeout=300)
    assert r.rc == 0, r
    guest.check("dd if=/dev/urandom of=/data/fill bs=1M count=24 conv=fsync 2>&1")
    errf = tmp_path / "stderr-scratch"
    with open(errf, "w") as err:
        p = subprocess.Popen(argv(bins, guest, target, sets=(f"scratch_dir={scratch}",)),
                             stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": "copy:hold"})
    try:
        deadline = time.monotonic() + 120
        while not stopped(p):
            assert p.poll() is None and time.monotonic() < deadline, errf.read_text()
            time.sleep(0.1)
        # The guest overwrites what the job must keep: 24 MiB into 6 MiB.
        sp_guest.guest_exec_start(guest.dom, "dd if=/dev/urandom of=/data/fill bs=1M count=24 "
                                  "conv=notrunc,fsync")
        t0 = time.monotonic()
        while guest.dom.state() != [libvirt.VIR_DOMAIN_PAUSED,
                                    libvirt.VIR_DOMAIN_PAUSED_IOERROR]:
            assert time.monotonic() - t0 < 120, guest.dom.state()
            time.sleep(0.1)
        t_paused = time.monotonic()
        while p.poll() is None and time.monotonic() - t_paused < 120:
            p.send_signal(signal.SIGCONT)
            time.sleep(0.1)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = errf.read_text()
    assert rc == 1, err
    assert "less than the" in err and "scratch_dir" in err, err  # the preflight warning
    assert "paused on an I/O error during the copy" in err, err
    assert "resumed" in err, err
    s = settle(guest, target, before)
    assert s["running"] and s["no_job"] and s["checkpoints_ok"], (s, err)
    # The guest's write went through once the filter was gone.
    guest.check("sync")
    r = run(argv(bins, guest, target) + ["--json"], timeout=300)
    assert r.rc == 0, r
    assert r.json()["level"] == "inc"
    verify_all(bins, target, guest)


# -- prune and the .partial being written -------------------------------------------

def test_prune_elsewhere_spares_the_partial_being_written(bins, make_vm, tmp_path):
    """A killed run's .partial (its lock free) is removed by the next run of
    the VM; a .partial being written (its lock <id>.lock held) survives a
    prune from another URI that shares the target (the libvirt test driver:
    it knows no such VM, so no VM lock of this host protects the run)."""
    vm = make_vm(tag="faults-prune")
    target = tmp_path / "points"
    a = [bins.stillpoint, "backup", vm.name, "--target", str(target)]
    for s in ("pause_max_ms=30000", "keep=0", "freeze=off"):
        a += ["--set", s]
    r = run(a, timeout=300)
    assert r.rc == 0, r
    env = {**os.environ, "STILLPOINT_TEST_FAILPOINT": "copy:kill"}
    assert subprocess.run(a, env=env, capture_output=True, timeout=300).returncode == -9
    done, stale = spp.points(target / vm.name)
    assert len(done) == 1 and len(stale) == 1, (done, stale)
    errf = tmp_path / "stderr-held"
    with open(errf, "w") as err:
        p = subprocess.Popen(a, stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": "copy:hold"})
    try:
        deadline = time.monotonic() + 120
        while not stopped(p):
            assert p.poll() is None and time.monotonic() < deadline, errf.read_text()
            time.sleep(0.1)
        done, partial = spp.points(target / vm.name)
        # The killed run's .partial went at this run's start.
        assert stale[0] not in partial and len(partial) == 1, (stale, partial)
        assert f"remove {stale[0]}" in errf.read_text()
        pr = run([bins.stillpoint, "prune", vm.name, "-c", "test:///default", "--target",
                  str(target), "--set", "keep=1"], timeout=120)
        assert pr.rc == 0, pr
        assert "is being written" in pr.err, pr
        assert spp.points(target / vm.name)[1] == partial
        while p.poll() is None and time.monotonic() < deadline + 120:
            p.send_signal(signal.SIGCONT)
            time.sleep(0.1)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0, errf.read_text()
    done, partial = spp.points(target / vm.name)
    assert len(done) == 2 and partial == [], (done, partial)
    assert not [n for n in os.listdir(target / vm.name) if n.endswith(".lock")]


def test_sigterm_during_prune_stops_between_points(bins, make_vm, tmp_path):
    """After the copy a backup keeps SIGTERM blocked (its signalfd), so a stop
    during its prune used to wait for the whole prune. Now prune checks
    between points: the run ends at once with its point complete (exit 0),
    nothing half-removed, and a later prune finishes the job."""
    vm = make_vm(tag="faults-term")
    target = tmp_path / "points"
    a = [bins.stillpoint, "backup", vm.name, "--target", str(target)]
    for s in ("pause_max_ms=30000", "freeze=off"):
        a += ["--set", s]
    for _ in range(2):
        r = run(a + ["--set", "keep=0"], timeout=300)
        assert r.rc == 0, r
    errf = tmp_path / "stderr-prune"
    with open(errf, "w") as err:
        p = subprocess.Popen(a + ["--set", "keep=1"], stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": "prune:hold"})
    try:
        deadline = time.monotonic() + 120
        while not stopped(p):
            assert p.poll() is None and time.monotonic() < deadline, errf.read_text()
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        while p.poll() is None and time.monotonic() < deadline:
            p.send_signal(signal.SIGCONT)
            time.sleep(0.1)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = errf.read_text()
    assert rc == 0, err
    assert "stopped by a signal between two points" in err, err
    done, partial = spp.points(target / vm.name)
    assert len(done) == 3 and partial == [], (done, partial)
    r = run([bins.stillpoint, "prune", vm.name, "--target", str(target), "--set", "keep=1"],
            timeout=300)
    assert r.rc == 0, r
    done, _ = spp.points(target / vm.name)
    assert len(done) == 1
    v = run([bins.stillpoint, "verify", str(target / vm.name / done[0])], timeout=300)
    assert v.rc == 0, v
