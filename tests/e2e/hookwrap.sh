#!/bin/sh
# Test stand-in for the installed stillpoint-hook (see sp_hooktest.py).
# libvirtd runs hooks without STILLPOINT_CONFDIR and this host has no syslog:
# this sets the test configuration (conf/ beside the wrapper's real path) and
# keeps the hook's log lines in hook.log there, followed by one line of its
# own with the hook's wall time as libvirt waited for it
# ("hookwrap: DOMAIN: OP SUBOP: returned after N ms"). Arguments, stdin,
# stderr and the exit status pass through unchanged.
t0=$(date +%s%N)
here=$(dirname "$(readlink -f "$0")")
STILLPOINT_CONFDIR="$here/conf"
export STILLPOINT_CONFDIR
err="$here/.err.$$"
"$here/stillpoint-hook" "$@" 2>"$err"
rc=$?
t1=$(date +%s%N)
cat "$err" >>"$here/hook.log"
echo "hookwrap: $1: $2 $3: returned after $(( (t1 - t0) / 1000000 )) ms" >>"$here/hook.log"
cat "$err" >&2
rm -f "$err"
exit "$rc"
