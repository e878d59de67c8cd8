"""The consistency proof's moving parts, shared by tests/e2e/test_consistency.py
and tests/bench/consistency: take backup points of the tiny guest while its
loop runs, and read the loop's three values back from a point alone.

The loop (`gtool loop`, tests/guest/gtool.c) writes N to /data/counter
(fsync), then TPM NV counter LOOP_IDX := N, then EFI variable LOOP_VAR := N.
A point taken at one instant therefore satisfies disk >= tpm >= efi >= disk - 1
(sp_guest.loop_values_consistent); a point whose disks, TPM and NVRAM were
taken at different moments generally does not.
"""
import json
import os
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sp_guest
import sp_ovmf

# One loop iteration appends one record to OVMF's variable store, which is
# only reclaimed at boot: 60-byte header + "SpLoop\0" in UTF-16 + 8 bytes.
LOOP_RECORD = (sp_ovmf.AUTH_HEADER.size + 2 * (len(sp_guest.LOOP_VAR) + 1) + 8 + 3) & ~3

# Configurations of a point, by name.
CONFIGS = {
    "pause": ("freeze=off", "pause=on"),     # the pause alone (the claim)
    "freeze": ("freeze=auto", "pause=on"),   # what users run
    "nopause": ("freeze=off", "pause=off"),  # the negative control
    "idle": ("freeze=auto", "pause=on"),     # freeze_ms of a guest at rest
}


def loop_room(dom):
    """How many more loop iterations the guest's variable store takes."""
    store = sp_ovmf.VarStore(sp_guest.live_nvram_path(dom).read_bytes())
    return (store.end - store.free) // LOOP_RECORD


def ensure_loop_room(guest, iterations):
    """Restarts the guest (OVMF reclaims its store at boot) when the store
    would fill before `iterations` more loop iterations. Returns whether it
    restarted. The loop must not be running."""
    if loop_room(guest.dom) >= iterations:
        return False
    sp_guest.stop_guest(guest)
    sp_guest.start_guest(guest)
    room = loop_room(guest.dom)
    if room < iterations:
        raise RuntimeError(f"{guest.name}: room for {room} loop iterations after a restart, "
                           f"{iterations} needed")
    return True


@dataclass
class Point:
    config: str
    manifest: dict
    values: tuple = None     # (disk, tpm, efi)

    @property
    def agrees(self):
        return sp_guest.loop_values_consistent(*self.values)

    @property
    def path(self):
        return Path(self.manifest["path"])


def take_point(stillpoint, name, target, config, extra=(), env=None):
    """One `stillpoint backup --json` with the configuration's settings;
    raises with its stderr when it fails."""
    argv = [stillpoint, "backup", name, "--target", str(target), "--json"]
    for s in (*CONFIGS[config], *extra):
        argv += ["--set", s]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                        env={**os.environ, **(env or {})})
    if cp.returncode != 0:
        raise RuntimeError(f"stillpoint backup ({config}) exited {cp.returncode}:\n{cp.stderr}")
    return Point(config, json.loads(cp.stdout))


def read_point(point):
    """(disk, tpm, efi) from the point's files alone: the qcow2 (its backing
    chain is the earlier points of the same target), its copy of the swtpm
    state and its copy of the NVRAM."""
    m = point.manifest
    disk = point.path / "disks" / "vda.qcow2"
    tpm = point.path / m["tpm"]["path"]
    nvram = point.path / m["nvram"]["path"]
    point.values = sp_guest.read_loop_values(disk, tpm, nvram)
    return point.values


def pct(values, p):
    """Percentile with linear interpolation (p in 0..100)."""
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(points):
    """{config: (agreeing, total)} and the freeze_ms list of frozen points."""
    rates = {}
    for p in points:
        a, n = rates.get(p.config, (0, 0))
        rates[p.config] = (a + int(p.agrees), n + 1)
    freeze = [p.manifest["window"]["freeze_ms"] for p in points
              if p.manifest["window"]["frozen"] > 0]
    return rates, freeze


def table(points):
    lines = [f"{'point':24} {'config':8} {'disk':>8} {'tpm':>8} {'efi':>8} "
             f"{'agree':>5} {'pause_ms':>8} {'freeze_ms':>9}"]
    for p in points:
        w = p.manifest["window"]
        d, t, e = p.values
        lines.append(f"{p.manifest['id']:24} {p.config:8} {d:8} {t:8} {e:8} "
                     f"{'yes' if p.agrees else 'NO':>5} {w['pause_ms']:8.0f} "
                     f"{w['freeze_ms']:9.0f}")
    rates, freeze = summary(points)
    for config, (a, n) in rates.items():
        lines.append(f"{config}: {a}/{n} points agree")
    if freeze:
        lines.append(f"freeze_ms over {len(freeze)} frozen points: p50 {pct(freeze, 50):.0f}, "
                     f"p95 {pct(freeze, 95):.0f}, median {statistics.median(freeze):.0f}")
    return "\n".join(lines)
