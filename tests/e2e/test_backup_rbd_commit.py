"""The commit of a point in Ceph whose answer is lost (docs/design.md,
"Points in Ceph", Commit): the run reads point.ID back rather than fail as
if it had not landed, which would delete the checkpoint of a committed
point and make the next run a full.  Test failpoints (agent/test_knob.h,
commit:ACTION) make the commit report a timeout after it landed (lost),
or without sending it (timeout), and make the read-back fail too
(-unread): then the run fails keeping the checkpoint, and the next run
decides from the pool's index.  Shares the Ceph fixture and the helpers
of test_backup_rbd.py.
"""
import libvirt
import pytest

import sp_vm
from conftest import run
from test_backup_rbd import TIMEOUT, assert_committed, list_points, pool, vm  # noqa: F401


def backup(bins, vm, pool, failpoint=None):
    argv = [bins.stillpoint, "backup", vm.name, "--target", pool.target, "--json",
            *pool.sets()]
    env = {"STILLPOINT_TEST_FAILPOINT": f"commit:{failpoint}"} if failpoint else None
    return run(argv, env=env, timeout=TIMEOUT)


def index(pool, vm):
    """The VM's index: committed ids and ids with intents left."""
    keys = pool.omap(f"stillpoint.vm.{vm.uuid}")
    points = [k.split(".", 1)[1] for k in keys if k.startswith("point.")]
    pending = sorted({k.split(".")[1] for k in keys if k.startswith("pending.")})
    return points, pending


def assert_vm_fine(vm):
    assert vm.is_running() and vm.dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE


def test_lost_commit_answer_is_read_back(bins, vm, pool):
    """timeout: the commit never landed, the read-back says so, and the run
    fails as any failed run (checkpoint deleted, leftovers for the next
    run); lost: the commit landed and only its answer was lost, so the
    read-back finds our record and the run succeeds with its checkpoint."""
    r = backup(bins, vm, pool)
    assert r.rc == 0, r
    p0 = r.json()["id"]

    before = sp_vm.checkpoints(vm.dom)
    r = backup(bins, vm, pool, "timeout")
    assert r.rc == 1, r
    assert "test failpoint commit: timeout" in r.err, r
    assert "reading the domain's index back" in r.err, r
    assert "was not committed (read back from the index)" in r.err, r
    assert sp_vm.checkpoints(vm.dom) == before
    points, pending = index(pool, vm)
    assert points == [p0] and len(pending) == 1, (points, pending)
    assert_vm_fine(vm)

    r = backup(bins, vm, pool, "lost")
    assert r.rc == 0, r
    assert "test failpoint commit: lost" in r.err, r
    assert "is committed (read back from the index)" in r.err, r
    assert "leftover" in r.err, r  # the failed run's, under the lock
    j = r.json()
    assert j["level"] == "inc" and j["parent"] == p0, j
    assert_committed(pool, vm, j)
    assert set(sp_vm.checkpoints(vm.dom)) - set(before) == {j["id"]}
    assert index(pool, vm) == ([p0, j["id"]], [])
    assert_vm_fine(vm)

    # The point it read back is an ordinary one: the next run builds on it.
    r = backup(bins, vm, pool)
    assert r.rc == 0, r
    assert r.json()["level"] == "inc" and r.json()["parent"] == j["id"], r.json()


@pytest.mark.slow
def test_unreadable_commit_keeps_the_checkpoint_and_the_next_run_decides(bins, vm, pool):
    """The commit's answer lost and its read-back failing too: exit 1, the
    checkpoint kept, and the next run decides from the index: a point that
    was not committed loses its checkpoint there (and its leftovers), one
    that was is the next incremental's parent; prune decides the same way."""
    r = backup(bins, vm, pool)
    assert r.rc == 0, r
    p0 = r.json()["id"]
    before = sp_vm.checkpoints(vm.dom)

    # Not landed, not known: the checkpoint stays, no point is visible.
    r = backup(bins, vm, pool, "timeout-unread")
    assert r.rc == 1, r
    assert "reading it back failed too" in r.err and "its checkpoint is kept" in r.err, r
    assert "not committed: nothing of it is visible" not in r.err, r
    kept = sorted(set(sp_vm.checkpoints(vm.dom)) - set(before))
    assert len(kept) == 1, (kept, before)
    points, pending = index(pool, vm)
    assert points == [p0] and pending == kept, (points, pending, kept)
    assert [p["id"] for p in list_points(bins, vm, pool) if p["complete"]] == [p0]
    assert_vm_fine(vm)

    # The index shows it never committed: its checkpoint goes, and the
    # run is an incremental on the last good point.
    r = backup(bins, vm, pool)
    assert r.rc == 0, r
    assert f"deleted checkpoint {kept[0]}" in r.err and "never committed" in r.err, r
    j = r.json()
    assert j["level"] == "inc" and j["parent"] == p0, j
    assert kept[0] not in sp_vm.checkpoints(vm.dom)
    assert index(pool, vm) == ([p0, j["id"]], [])
    p1 = j["id"]

    # Landed, not known: the checkpoint stays and the point is complete.
    before = sp_vm.checkpoints(vm.dom)
    r = backup(bins, vm, pool, "lost-unread")
    assert r.rc == 1, r
    assert "reading it back failed too" in r.err and "its checkpoint is kept" in r.err, r
    kept = sorted(set(sp_vm.checkpoints(vm.dom)) - set(before))
    assert len(kept) == 1, (kept, before)
    assert index(pool, vm) == ([p0, p1, kept[0]], [])
    assert_vm_fine(vm)

    # The index has it: an incremental on it, its checkpoint untouched.
    r = backup(bins, vm, pool)
    assert r.rc == 0, r
    assert "deleted checkpoint" not in r.err and "FULL" not in r.err, r
    j = r.json()
    assert j["level"] == "inc" and j["parent"] == kept[0], j
    assert_committed(pool, vm, j)
    assert kept[0] in sp_vm.checkpoints(vm.dom)

    # prune decides the same way under the lock: an uncommitted point's
    # checkpoint goes with its leftovers, the points stay.
    before = sp_vm.checkpoints(vm.dom)
    r = backup(bins, vm, pool, "timeout-unread")
    assert r.rc == 1, r
    kept = sorted(set(sp_vm.checkpoints(vm.dom)) - set(before))
    assert len(kept) == 1, (kept, before)
    r = run([bins.stillpoint, "prune", vm.name, "--target", pool.target, *pool.sets(),
             "--set", "keep=10"], timeout=TIMEOUT)
    assert r.rc == 0, r
    assert f"deleted checkpoint {kept[0]}" in r.err, r
    assert sp_vm.checkpoints(vm.dom) == before
    assert index(pool, vm)[1] == []
