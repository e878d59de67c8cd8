"""Guest file system freeze over the QEMU guest agent, against the
tiny Linux guest (tests/guest) and a VM whose agent never comes.

What is proven here, each by a test below:
- freeze = auto|required with a working agent: the point's file system was
  captured frozen (ext4 drops `needs_recovery` while frozen), the manifest
  has frozen >= 1, thawed == frozen, freeze_ms and the freeze/thaw times
  around the pause, and the guest is thawed afterwards.
- No agent behind a configured channel: auto warns and goes on with
  frozen 0; required exits 3 before the VM is touched (no lifecycle event,
  no checkpoint, no point).
- An agent that is connected but stopped (SIGSTOP) before the backup: the
  same, within freeze_timeout_s; no freeze is sent that it could carry out
  later.
- An agent that stops between the status probe and the freeze: the late
  freeze it carries out when it moves again is thawed by stillpoint's thaw
  retries (auto: point taken unfrozen; required: exit 1).
- A guest frozen by someone else: not frozen, not thawed, warned, still
  frozen afterwards; the point is taken from the frozen file system.
- A thaw count different from the freeze count is a manifest warning.
- A paused VM is not frozen (the agent needs running vCPUs): auto warns,
  required refuses.
- The guardian thaws (and resumes) when the coordinator is killed -9 while
  the guest is frozen, paused or not.
Every test leaves the shared guest running, thawed and with a live agent
(`healthy`), and checks the manifest says what happened.
"""
import json
import os
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

T = 2   # freeze_timeout_s of the tests that wait on a silent agent
# The host is shared and TCG is slow: a window over the default 2 s must not
# fail these tests (the window bound is test_backup's business). Given
# first, so a test's own --set overrides it.
BASE_SETS = ("pause_max_ms=10000",)


# ---------------------------------------------------------------- helpers

def backup(bins, name, target, *sets, env=None, timeout=300):
    argv = [bins.stillpoint, "backup", name, "--target", str(target), "--json"]
    for s in (*BASE_SETS, *sets):
        argv += ["--set", s]
    return run(argv, env=env, timeout=timeout)


def start_backup(bins, name, target, tmp_path, *sets, env=None):
    """The coordinator in the background. Its output goes to files, not
    pipes: a guardian outliving a killed coordinator keeps stderr open."""
    out = open(tmp_path / "stdout", "w")
    err = open(tmp_path / "stderr", "w")
    argv = [bins.stillpoint, "backup", name, "--target", str(target), "--json"]
    for s in (*BASE_SETS, *sets):
        argv += ["--set", s]
    p = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out, stderr=err)
    out.close()
    err.close()
    return p


def freeze_status(dom, timeout=10):
    return agent(dom, {"execute": "guest-fsfreeze-status"}, timeout=timeout)


def wait_status(dom, want, timeout=30):
    """Polls guest-fsfreeze-status until it says want ("frozen"/"thawed")."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = freeze_status(dom, timeout=2)
            if last == want:
                return time.monotonic()
        except AgentError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"guest-fsfreeze-status not {want!r} within {timeout} s: {last}")


def needs_recovery(image):
    """Whether the ext4 file system in a point's disk (chain) has a journal to
    replay. A frozen ext4 has none: FIFREEZE commits the journal and clears
    the flag until the thaw, so a point taken frozen reads back clean."""
    with tempfile.TemporaryDirectory(prefix="sp-fz-") as d:
        raw = os.path.join(d, "disk.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), raw], check=True)
        out = subprocess.run(["dumpe2fs", "-h", raw], check=True, capture_output=True,
                             text=True).stdout
    features = next(line for line in out.splitlines() if line.startswith("Filesystem features"))
    return "needs_recovery" in features.split()


def point_disk(j):
    return os.path.join(j["path"], "disks", "vda.qcow2")


def healthy(g):
    """The shared guest as every test must leave it: running, thawed, its
    agent answering and guest-exec working (refused while frozen)."""
    assert g.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, g.dom.state()
    assert freeze_status(g.dom) == "thawed"
    assert g.check("echo alive > /data/fz-alive && cat /data/fz-alive") == "alive\n"


def console_run(dom, command):
    """Runs a command in the guest through its serial console: the one way in
    while the agent is stopped. /init puts an `askfirst` root shell on
    ttyS0, which Enter starts (a second Enter is harmless)."""
    stream = dom.connect().newStream(0)
    dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    try:
        stream.send(b"\n")
        time.sleep(0.5)
        stream.send(command.encode() + b"\n")
        time.sleep(0.5)
    finally:
        stream.finish()


# The stopper: qemu-ga stops itself through a shell it started, and that
# shell also continues it after `safety_s`, so a guest is never left with a
# stopped agent even if the test dies. The shell keeps running while
# qemu-ga is stopped.
def stop_agent(dom, cont_after_s=120, delay_s=0.3):
    sp_guest.guest_exec_start(
        dom, f"p=$(pidof qemu-ga); sleep {delay_s}; kill -STOP $p; "
             f"sleep {cont_after_s}; kill -CONT $p")


def continue_agent(g):
    console_run(g.dom, "kill -CONT $(pidof qemu-ga)")
    sp_guest.wait_for_agent(g.dom, timeout=30)


def new_checkpoints(dom, before):
    return sorted(set(sp_vm.checkpoints(dom)) - set(before))


@pytest.fixture
def guest(tiny_guest, confdir):
    """The session's tiny guest, checked healthy before and after the test."""
    healthy(tiny_guest)
    yield tiny_guest
    healthy(tiny_guest)


@pytest.fixture
def events(tiny_guest):
    w = sp_vm.EventWatcher(tiny_guest.uuid)
    yield w
    w.close()


# ---------------------------------------------------------------- a working agent

@pytest.mark.slow
@pytest.mark.parametrize("policy", ["auto", "required"])
def test_freeze_with_agent(bins, guest, tmp_path, policy):
    r = backup(bins, guest.name, tmp_path, f"freeze={policy}")
    assert r.rc == 0, r
    j = r.json()
    w = j["window"]
    assert w["frozen"] >= 1 and w["thawed"] == w["frozen"], w
    # freeze -> pause -> resume -> thaw, and the freeze spans the pause.
    assert w["freeze_at"] <= w["paused_at"] <= w["resumed_at"] <= w["thawed_at"], w
    assert w["freeze_ms"] >= w["pause_ms"] > 0, w
    assert w["freeze_ms"] < 10000, "Windows VSS would have given up"
    assert not any("freeze" in m or "thaw" in m or "agent" in m for m in j["warnings"]), j
    # The point's file system was captured frozen: nothing to replay.
    assert not needs_recovery(point_disk(j))
    print(f"timing: freeze_ms {w['freeze_ms']:.0f}, pause_ms {w['pause_ms']:.0f}")


@pytest.mark.slow
def test_freeze_off_is_not_frozen(bins, guest, tmp_path):
    """The control for the check above: a mounted, unfrozen ext4 captured
    in a pause does need its journal replayed."""
    r = backup(bins, guest.name, tmp_path, "freeze=off")
    assert r.rc == 0, r
    j = r.json()
    assert j["window"]["frozen"] == 0 and j["window"]["freeze_at"] is None
    assert "freeze = off" in j["warnings"]
    assert needs_recovery(point_disk(j))


@pytest.mark.slow
def test_freeze_mountpoints(bins, guest, tmp_path):
    r = backup(bins, guest.name, tmp_path / "a", "freeze=required", "freeze_mountpoints=/data")
    assert r.rc == 0, r
    assert r.json()["window"]["frozen"] == 1
    # A mount point the guest does not have: the agent freezes nothing and
    # says 0, yet holds its frozen state (guest-exec refused) until a thaw.
    r = backup(bins, guest.name, tmp_path / "b", "freeze=auto", "freeze_mountpoints=/nowhere")
    assert r.rc == 0, r
    j = r.json()
    assert j["window"]["frozen"] == 0 and j["window"]["thawed_at"] is not None
    assert any("froze no file system (freeze_mountpoints = /nowhere)" in m
               for m in j["warnings"]), j
    healthy(guest)
    before = sp_vm.checkpoints(guest.dom)
    r = backup(bins, guest.name, tmp_path / "c", "freeze=required",
               "freeze_mountpoints=/nowhere")
    assert r.rc == 1, r
    assert "froze no file system (freeze = required): check freeze_mountpoints" in r.err
    assert new_checkpoints(guest.dom, before) == []


@pytest.mark.slow
def test_frozen_by_someone_else_after_probe(bins, guest, tmp_path):
    """Someone freezes the guest between our status probe and our freeze:
    the agent refuses our freeze with an error, and that freeze is not ours
    to thaw."""
    p = start_backup(bins, guest.name, tmp_path / "pts", tmp_path, "freeze=auto",
                     env={"STILLPOINT_TEST_FREEZE_DELAY_MS": "4000"})
    try:
        deadline = time.monotonic() + 60
        while not spp.points(tmp_path / "pts" / guest.name)[1]:
            assert time.monotonic() < deadline and p.poll() is None, \
                (tmp_path / "stderr").read_text()
            time.sleep(0.05)
        time.sleep(1)
        assert agent(guest.dom, {"execute": "guest-fsfreeze-freeze"}) >= 1
        rc = p.wait(timeout=120)
        assert rc == 0, (tmp_path / "stderr").read_text()
        j = json.loads((tmp_path / "stdout").read_text())
        w = j["window"]
        assert w["frozen"] == 0 and w["freeze_at"] is None and w["thawed_at"] is None, w
        assert any(m.startswith("freeze failed, point taken unfrozen") for m in j["warnings"])
        assert freeze_status(guest.dom) == "frozen"
    finally:
        if p.poll() is None:
            p.kill()
        agent(guest.dom, {"execute": "guest-fsfreeze-thaw"})


# ---------------------------------------------------------------- no agent behind the channel

AGENT_CHANNEL = ("<channel type='unix'><target type='virtio' "
                 "name='org.qemu.guest_agent.0'/></channel>")


def test_channel_without_agent(bins, make_vm, tmp_path):
    """A VM with the agent channel but no guest OS: the channel never
    connects. Not slow: no tiny guest needed, so it also runs under ASan."""
    vm = make_vm(tag="fz-noagent", extra_devices=AGENT_CHANNEL)
    xml = vm.live_xml()
    ch = xml.find("./devices/channel/target[@name='org.qemu.guest_agent.0']")
    assert ch is not None and ch.get("state") != "connected"

    r = backup(bins, vm.name, tmp_path / "auto", "freeze=auto")
    assert r.rc == 0, r
    j = r.json()
    assert j["window"]["frozen"] == 0 and j["window"]["thawed"] == 0
    assert j["window"]["freeze_at"] is None and j["window"]["consistent"] is True
    assert any("has a guest agent channel but no agent answering" in m
               for m in j["warnings"]), j

    watcher = sp_vm.EventWatcher(vm.uuid)
    try:
        before = sp_vm.checkpoints(vm.dom)
        r = backup(bins, vm.name, tmp_path / "required", "freeze=required")
        assert r.rc == 3, r
        assert "freeze = required" in r.err and "qemu-guest-agent" in r.err
        time.sleep(0.5)   # events would arrive within ms
        assert watcher.kinds() == []
        assert sp_vm.checkpoints(vm.dom) == before
        assert not (tmp_path / "required").exists() or \
            spp.points(tmp_path / "required" / vm.name) == ([], [])
        assert vm.is_running()
    finally:
        watcher.close()


# ---------------------------------------------------------------- a stopped agent

@pytest.mark.slow
def test_agent_stopped_before_backup(bins, guest, tmp_path, events):
    """qemu-ga SIGSTOPped: the channel still says connected, nothing answers.
    Preflight's guest-fsfreeze-status gets no answer within freeze_timeout_s,
    so no freeze is ever sent (a stopped agent would carry it out later)."""
    stop_agent(guest.dom)
    try:
        time.sleep(1)   # the stopper's 0.3 s, with room
        with pytest.raises(AgentError, match="not responding"):
            agent(guest.dom, {"execute": "guest-ping"}, timeout=2)
        live = guest.dom.XMLDesc(0)
        assert "name='org.qemu.guest_agent.0' state='connected'" in live

        before = sp_vm.checkpoints(guest.dom)
        events.clear()
        t0 = time.monotonic()
        r = backup(bins, guest.name, tmp_path / "req", "freeze=required",
                   f"freeze_timeout_s={T}")
        took = time.monotonic() - t0
        assert r.rc == 3, r
        assert "did not answer within freeze_timeout_s" in r.err
        assert took < 3 * T + 2, f"refusal took {took:.1f} s"
        assert events.kinds() == [] and sp_vm.checkpoints(guest.dom) == before
        assert not (tmp_path / "req").exists() or \
            spp.points(tmp_path / "req" / guest.name) == ([], [])

        r = backup(bins, guest.name, tmp_path / "auto", "freeze=auto", f"freeze_timeout_s={T}")
        assert r.rc == 0, r
        j = r.json()
        w = j["window"]
        assert w["frozen"] == 0 and w["thawed"] == 0 and w["freeze_at"] is None, w
        assert w["paused"] and w["consistent"]
        assert any("did not answer within freeze_timeout_s" in m for m in j["warnings"]), j
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    finally:
        continue_agent(guest)
    # Nothing was queued that froze it when the agent moved again.
    time.sleep(1)
    assert freeze_status(guest.dom) == "thawed"


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["auto", "required"])
def test_agent_stops_after_probe(bins, guest, tmp_path, policy):
    """The agent stops after answering the status probe, before the freeze:
    the freeze is sent and not answered. When the agent moves again it
    carries the freeze out; stillpoint's thaw retries (6 x freeze_timeout_s)
    must thaw it, or the guest would stay frozen for good."""
    cont_after = 5
    before = sp_vm.checkpoints(guest.dom)
    p = start_backup(bins, guest.name, tmp_path / "pts", tmp_path, f"freeze={policy}",
                     f"freeze_timeout_s={T}",
                     env={"STILLPOINT_TEST_FREEZE_DELAY_MS": "4000"})
    try:
        # The point directory appears in prepare, right before the probe;
        # the coordinator then waits 4 s before it sends the freeze.
        deadline = time.monotonic() + 60
        while not spp.points(tmp_path / "pts" / guest.name)[1]:
            assert time.monotonic() < deadline and p.poll() is None, \
                (tmp_path / "stderr").read_text()
            time.sleep(0.05)
        time.sleep(1)
        # No ping to check: a timed-out ping would make libvirt re-sync
        # first, and the freeze would then never be sent at all.
        stop_agent(guest.dom, cont_after_s=cont_after)
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    err = (tmp_path / "stderr").read_text()
    assert "did not answer the freeze within 2 s" in err, err
    # The late freeze happened when the agent continued, and was thawed.
    assert "thawed 1 file system(s)" in err, err
    if policy == "required":
        assert rc == 1, err
        assert "(freeze = required)" in err
        assert new_checkpoints(guest.dom, before) == []
    else:
        assert rc == 0, err
        j = json.loads((tmp_path / "stdout").read_text())
        w = j["window"]
        assert w["frozen"] == 0 and w["thawed"] == 1, w
        assert any("did not answer the freeze" in m and "thawed 1 file system(s)" in m
                   for m in j["warnings"]), j
        assert w["freeze_ms"] >= T * 1000, w
    wait_status(guest.dom, "thawed", timeout=10)


# ---------------------------------------------------------------- someone else's freeze

@pytest.mark.slow
@pytest.mark.parametrize("policy", ["auto", "required"])
def test_guest_frozen_by_someone_else(bins, guest, tmp_path, policy):
    assert agent(guest.dom, {"execute": "guest-fsfreeze-freeze"}) >= 1
    try:
        r = backup(bins, guest.name, tmp_path, f"freeze={policy}")
        assert r.rc == 0, r
        j = r.json()
        w = j["window"]
        assert w["frozen"] == 0 and w["thawed"] == 0 and w["freeze_at"] is None, w
        assert any("already frozen by someone else" in m for m in j["warnings"]), j
        # Left frozen for its owner...
        assert freeze_status(guest.dom) == "frozen"
        # ...and the point saw the frozen file system.
        assert not needs_recovery(point_disk(j))
    finally:
        agent(guest.dom, {"execute": "guest-fsfreeze-thaw"})


@pytest.mark.slow
def test_thaw_count_differs(bins, guest, tmp_path):
    """Someone thaws the guest between our freeze and our thaw: we thaw 0
    of the 1 we froze, and the manifest says so."""
    p = start_backup(bins, guest.name, tmp_path / "pts", tmp_path, "freeze=required",
                     env={"STILLPOINT_TEST_FROZEN_DELAY_MS": "3000"})
    try:
        wait_status(guest.dom, "frozen")
        assert agent(guest.dom, {"execute": "guest-fsfreeze-thaw"}) == 1
        assert p.wait(timeout=120) == 0, (tmp_path / "stderr").read_text()
    finally:
        if p.poll() is None:
            p.kill()
    j = json.loads((tmp_path / "stdout").read_text())
    assert j["window"]["frozen"] == 1 and j["window"]["thawed"] == 0, j["window"]
    assert any("thawed 0 file system(s) but froze 1" in m for m in j["warnings"]), j


# ---------------------------------------------------------------- a paused VM

@pytest.mark.slow
def test_paused_vm_not_frozen(bins, guest, tmp_path):
    guest.dom.suspend()
    try:
        r = backup(bins, guest.name, tmp_path / "auto", "freeze=auto")
        assert r.rc == 0, r
        j = r.json()
        assert j["window"]["frozen"] == 0 and j["window"]["paused"] is False
        assert j["window"]["consistent"] is True
        assert any("is paused" in m for m in j["warnings"]), j
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        r = backup(bins, guest.name, tmp_path / "req", "freeze=required")
        assert r.rc == 3, r
        assert "is paused" in r.err and "resume it" in r.err
        assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    finally:
        guest.dom.resume()


# ---------------------------------------------------------------- the guardian

@pytest.mark.slow
@pytest.mark.parametrize("where", ["frozen", "frozen-and-paused"])
def test_guardian_thaws_after_kill_9(bins, guest, tmp_path, events, where):
    before = sp_vm.checkpoints(guest.dom)
    env = ({"STILLPOINT_TEST_FROZEN_DELAY_MS": "30000"} if where == "frozen"
           else {"STILLPOINT_TEST_WINDOW_DELAY_MS": "30000"})
    events.clear()
    p = start_backup(bins, guest.name, tmp_path / "pts", tmp_path, "freeze=required",
                     "pause_max_ms=60000", env=env)
    try:
        if where == "frozen":
            wait_status(guest.dom, "frozen", timeout=60)
        else:
            deadline = time.monotonic() + 60
            while events.SUSPENDED not in events.kinds():
                assert time.monotonic() < deadline and p.poll() is None, \
                    (tmp_path / "stderr").read_text()
                time.sleep(0.05)
            time.sleep(0.3)
            assert guest.dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        t_kill = time.monotonic()
        p.kill()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    if where != "frozen":
        assert events.wait_for(events.RESUMED, timeout=5) - t_kill < 2.0
    t_thawed = wait_status(guest.dom, "thawed", timeout=15)
    print(f"timing: thawed {t_thawed - t_kill:.2f} s after kill -9 ({where})")
    assert t_thawed - t_kill < 5.0
    assert (events.SUSPENDED in events.kinds()) == (where != "frozen")
    # The guardian also drops the new checkpoint of the job that began.
    deadline = time.monotonic() + 10
    while new_checkpoints(guest.dom, before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert new_checkpoints(guest.dom, before) == []
    assert "guardian" in (tmp_path / "stderr").read_text()
