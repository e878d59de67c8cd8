#!/bin/bash
# Make the test guest's data disk: an empty ext4 filesystem on the whole
# disk (no partition table: the guest mounts /dev/vda directly) in a qcow2.
# Usage: tests/guest/mkdata.sh OUT.qcow2 SIZE     (SIZE as qemu-img takes it, e.g. 64M)
# qcow2 because the backup tests need persistent dirty bitmaps, which raw
# images cannot carry.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 OUT.qcow2 SIZE" >&2; exit 2; }
out=$1 size=$2
raw=$(mktemp "$(dirname "$out")/.mkdata.XXXXXX.raw")
trap 'rm -f "$raw"' EXIT
qemu-img create -q -f raw "$raw" "$size"
# -E lazy_*=0: initialize everything now, so the guest starts with no
# background ext4lazyinit writes that would dirty the disk behind the tests.
mkfs.ext4 -q -F -L spdata -E lazy_itable_init=0,lazy_journal_init=0 "$raw"
qemu-img convert -q -f raw -O qcow2 "$raw" "$out"
