"""The consistency proof (docs/design.md, invariant 2): a backup point is
one instant, for disks, TPM and NVRAM together, while the guest writes to
all three as fast as it can.

The guest's loop writes N to its ext4 disk (fsync), then to a TPM NV
counter, then to an EFI variable, for N = 1, 2, 3, ... (sp_consistency).
Points are taken while it runs; each point's three values are read back
from the point alone (its qcow2 chain, its swtpm state copy read by a
private swtpm, its NVRAM copy parsed as an OVMF variable store) and must
agree: equal, or apart only by the loop's step in flight, in write order.

- freeze = off, pause = on: proves the pause itself. A freeze alone would
  already make the three agree (the loop blocks on the frozen disk), so
  the claim is tested without it.
- freeze = auto, pause = on: what users run; must agree as well.
- pause = off: the negative control. Its rate of disagreement is recorded
  (printed), not asserted: a lucky instant can agree by chance.
The loop must run through every point (values grow from point to point and
the loop ends without error), or agreement would prove nothing.
"""
import pytest

import sp_consistency as spc
import sp_guest

# Interleaved, so the three configurations see the same guest and host load.
ORDER = ["pause", "nopause", "pause", "freeze", "nopause", "pause", "nopause", "freeze",
         "pause", "nopause", "pause", "freeze", "nopause"]
# The host is shared: the window bound is test_backup's business, not ours.
EXTRA = ("pause_max_ms=10000",)


@pytest.mark.slow
def test_points_are_one_instant(bins, tiny_guest, confdir, tmp_path):
    g = tiny_guest
    # 13 points take ~15-30 s here, at 30-55 iterations/s: room for 2,000.
    spc.ensure_loop_room(g, 2000)
    target = tmp_path / "points"
    points = []
    base = sp_guest.start_loop(g.dom)
    try:
        for config in ORDER:
            points.append(spc.take_point(bins.stillpoint, g.name, target, config, EXTRA))
    finally:
        loop_error = sp_guest.stop_loop(g.dom)
    assert loop_error == "", f"the loop stopped early: {loop_error}"

    for p in points:
        spc.read_point(p)
    print("\n" + spc.table(points))

    disks = [p.values[0] for p in points]
    assert disks[0] > base and all(a < b for a, b in zip(disks, disks[1:])), \
        f"the loop did not run through every point: {disks}"
    for p in points:
        w = p.manifest["window"]
        assert w["consistent"] is (p.config != "nopause"), (p.config, w)
        assert (w["frozen"] >= 1) is (p.config == "freeze"), (p.config, w)
        if p.config != "nopause":
            assert p.agrees, f"{p.manifest['id']} ({p.config}): disk, TPM, EFI = {p.values}"
    rates, _ = spc.summary(points)
    assert rates["pause"] == (5, 5) and rates["freeze"] == (3, 3)
    a, n = rates["nopause"]
    print(f"consistency: pause=on {rates['pause'][0] + rates['freeze'][0]}/"
          f"{rates['pause'][1] + rates['freeze'][1]} agree, pause=off {a}/{n} agree")
    assert g.dom.isActive() and sp_guest.agent(
        g.dom, {"execute": "guest-fsfreeze-status"}) == "thawed"
