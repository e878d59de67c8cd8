#!/bin/sh
# Test stand-in for the installed stillpoint-hook (see sp_hooktest.py).
# libvirtd runs hooks without STILLPOINT_CONFDIR and this host has no syslog:
# this sets the test configuration (conf/ beside the wrapper's real path) and
# keeps the hook's log lines in hook.log there. Arguments, stdin, stderr and
# the exit status pass through unchanged.
here=$(dirname "$(readlink -f "$0")")
STILLPOINT_CONFDIR="$here/conf"
export STILLPOINT_CONFDIR
err="$here/.err.$$"
"$here/stillpoint-hook" "$@" 2>"$err"
rc=$?
cat "$err" >>"$here/hook.log"
cat "$err" >&2
rm -f "$err"
exit "$rc"
