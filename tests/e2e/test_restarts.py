"""libvirtd restarted under a backup (issue 16, docs/design.md "Failures
survived"): package upgrades and log rotation restart it, running VMs and
their backup jobs live on, and every client connection is cut. The
coordinator and its guardian connect again (agent/virt.c, virt_link) before
each step that must reach the VM.

The coordinator is held at a step with the test failpoint `STEP:hold` (it
SIGSTOPs itself), the shared libvirtd is restarted (SIGTERM, `libvirtd -d`,
as scripts/ensure-host does; `systemctl restart` where systemd runs it), then
the coordinator goes on (SIGCONT) or is killed. Three cases:

- pause: held with the VM paused past pause_max_ms: the guardian connects
  again and resumes it; the coordinator connects again, fails the point
  (exit 1, "overran") and removes its job and checkpoint.
- copy: held while a copier runs: the coordinator connects again, ends the
  job and completes the point (exit 0).
- finish: held before the rename, then SIGKILLed: the guardian connects
  again and deletes the checkpoint of the point that never completed.

After each: the VM runs, no job is active, every checkpoint stillpoint made
belongs to a complete point, and the next `backup --level auto` succeeds
without help; at the end every point verifies.

Restarting libvirtd cuts the connections of every other test in the same
pytest process: these tests run only in a process of their own (conftest.py
skips them otherwise; tests/run-all runs this file alone).
"""
import os
import signal
import subprocess
import time

import libvirt
import pytest

import sp_points as spp
import sp_vm
from conftest import run

pytestmark = [pytest.mark.slow, pytest.mark.restarts_libvirtd]

# A loaded host overruns the default 2 s pause: only the pause case wants that.
SETS = ("freeze=off", "keep=0", "pause_max_ms=30000")


def argv(bins, vm, target, sets=()):
    a = [bins.stillpoint, "backup", vm.name, "--target", str(target), "--level", "auto"]
    for s in (*SETS, *sets):
        a += ["--set", s]
    return a


def answers():
    return subprocess.run(["virsh", "-c", sp_vm.URI, "list"], capture_output=True,
                          timeout=30).returncode == 0


def restart_libvirtd():
    """Stops the shared libvirtd and brings it back at once; returns the
    seconds it was away."""
    t0 = time.monotonic()
    systemd = subprocess.run(["systemctl", "is-system-running"], capture_output=True,
                             text=True).stdout.strip() in ("running", "degraded")
    if systemd:
        subprocess.run(["systemctl", "restart", "libvirtd"], check=True, timeout=120)
    else:
        pids = [int(p) for p in subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True,
                                               text=True).stdout.split()]
        assert pids, "no libvirtd runs"
        for p in pids:
            os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while any(os.path.exists(f"/proc/{p}") for p in pids):
            assert time.monotonic() < deadline, "libvirtd did not stop on SIGTERM"
            time.sleep(0.1)
        # As systemd would start it (UMask=0022, cwd /): a libvirtd that
        # inherits run-all's umask 077 creates the swtpm log and state so
        # that swtpm_setup, running as tss, fails every later TPM start.
        subprocess.run(["libvirtd", "-d"], check=True, timeout=60, cwd="/",
                       preexec_fn=lambda: os.umask(0o022))
    deadline = time.monotonic() + 120
    while not answers():
        assert time.monotonic() < deadline, "libvirtd did not come back"
        time.sleep(0.2)
    return time.monotonic() - t0


class Guest:
    """A test VM that finds itself again after a restart (its handles die
    with the old connection)."""

    def __init__(self, confdir):
        self.vm = sp_vm.TestVM(libvirt.open(sp_vm.URI), tag="faults-restart")
        self.vm.start()
        self.name = self.vm.name

    def reattach(self):
        c = libvirt.open(sp_vm.URI)
        self.vm.conn, self.vm.dom = c, c.lookupByUUIDString(self.vm.uuid)

    @property
    def dom(self):
        try:
            self.vm.dom.state()
        except libvirt.libvirtError:
            self.reattach()
        return self.vm.dom


@pytest.fixture(scope="module")
def guest(confdir):
    sp_vm.ensure_libvirt()
    g = Guest(confdir)
    before = set(sp_vm.checkpoints(g.dom))
    try:
        yield g, before
    finally:
        sp_vm.ensure_libvirt()
        g.reattach()
        g.vm.remove()


def state_of(g, target, before):
    done, partial = spp.points(target / g.name)
    dom = g.dom
    ours = set(sp_vm.checkpoints(dom)) - before
    return {
        "running": dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING,
        "no_job": dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE,
        "checkpoints_ok": ours == set(done),
        "done": done,
        "partial": partial,
        "stray_checkpoints": sorted(ours - set(done)),
    }


def settle(g, target, before, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        s = state_of(g, target, before)
        if (s["running"] and s["no_job"] and s["checkpoints_ok"]) or time.monotonic() > deadline:
            return s
        time.sleep(0.25)


def wait_stopped(p, timeout=120):
    """Until the coordinator has SIGSTOPped itself at its failpoint."""
    deadline = time.monotonic() + timeout
    while True:
        assert p.poll() is None, f"the run ended (rc {p.returncode}) before its failpoint"
        with open(f"/proc/{p.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        assert time.monotonic() < deadline, "the failpoint was not reached"
        time.sleep(0.1)


def held_run(bins, g, target, tmp_path, step, then, sets=()):
    """Runs a backup held at `step`, restarts libvirtd there, then lets it go
    on ("cont") or kills it ("kill"); returns (rc, its stderr file, seconds
    away): the guardian outlives a killed coordinator and writes there later."""
    errf = tmp_path / f"stderr-{step}"
    with open(errf, "w") as err:
        p = subprocess.Popen(argv(bins, g, target, sets), stdout=subprocess.DEVNULL, stderr=err,
                             env={**os.environ, "STILLPOINT_TEST_FAILPOINT": f"{step}:hold"})
    try:
        wait_stopped(p)
        away = restart_libvirtd()
        if step == "pause":
            # Past pause_max_ms the guardian must reach the VM again.
            deadline = time.monotonic() + 90
            while g.dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                assert time.monotonic() < deadline, "the guardian did not resume the VM"
                time.sleep(0.2)
        if then == "kill":
            p.kill()
        # "copy" holds at each copier's start: let every one go on.
        deadline = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < deadline:
            p.send_signal(signal.SIGCONT)
            time.sleep(0.2)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, errf, away


# step, what the test does after the restart, expected exit, policy
CASES = [
    ("pause", "cont", 1, ("pause_max_ms=3000",)),
    ("copy", "cont", 0, ()),
    ("finish-before-rename", "kill", -9, ()),
]


def test_libvirtd_restarts(bins, guest, tmp_path):
    g, before = guest
    target = tmp_path / "points"
    r = run(argv(bins, g, target), timeout=300)
    assert r.rc == 0, r
    rows, bad = [], []
    for step, then, want, sets in CASES:
        rc, errf, away = held_run(bins, g, target, tmp_path, step, then, sets)
        s = settle(g, target, before)
        err = errf.read_text()
        # Who had to connect again: the guardian when it acted, the
        # coordinator when it went on.
        who = "guardian: libvirt connection" if step == "pause" or then == "kill" else None
        reconnected = "was lost (libvirtd restarted?): connected again" in err and (
            who is None or who in err)
        nxt = run(argv(bins, g, target) + ["--json"], timeout=300)
        ok = (rc == want and reconnected and s["running"] and s["no_job"] and s["checkpoints_ok"]
              and nxt.rc == 0)
        rows.append([step, then, f"{away:.1f}", rc, reconnected, s["running"], s["no_job"],
                     s["checkpoints_ok"], nxt.rc, nxt.json()["level"] if nxt.rc == 0 else "-",
                     "ok" if ok else "FAIL"])
        if not ok:
            bad.append((step, rc, s, err[-3000:], nxt))
    print("\nlibvirtd restarted while a backup was held at a step")
    for row in [["held at", "then", "away s", "rc", "reconnected", "running", "no job",
                 "checkpoints ok", "next rc", "next level", "outcome"], *rows]:
        print(" | ".join(str(x) for x in row))
    assert not bad, bad
    # Every complete point verifies; the chain went on without help.
    done, _ = spp.points(target / g.name)
    for pid in done:
        v = run([bins.stillpoint, "verify", str(target / g.name / pid)], timeout=300)
        assert v.rc == 0, (pid, v)
    s = state_of(g, target, before)
    assert s["running"] and s["no_job"] and s["checkpoints_ok"], s
