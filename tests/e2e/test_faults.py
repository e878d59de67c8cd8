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
import subprocess
import time

import libvirt
import pytest

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
        rc, err = run_with_failpoint(bins, guest, target, tmp_path, f"{step}:kill")
        s = settle(guest, target, before)
        fired = f"test failpoint {step}: kill" in err
        ok = (fired and rc == -9 and s["running"] and s["thawed"] and s["no_job"]
              and s["checkpoints_ok"])
        rows.append([step, rc, "yes" if fired else "NO", s["running"], s["thawed"], s["no_job"],
                     s["checkpoints_ok"], len(s["done"]), len(s["partial"]),
                     f"{time.monotonic() - t0:.1f}", "ok" if ok else "FAIL"])
        if not ok:
            bad.append((step, rc, s, err[-2000:]))
    table("coordinator SIGKILLed at each failpoint",
          ["failpoint", "rc", "fired", "running", "thawed", "no job", "checkpoints ok",
           "complete", "partial", "s", "outcome"], rows)
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
