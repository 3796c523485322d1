#!/bin/bash
# `make check`: build the selftests on the host, run them in the VM against
# one driver (rloop = rust_loop, loop = loop.c), and end with the summary
# line "N passed, N failed". A VM failure (timeout, panic, a kernel log line
# that shows a bug) counts as one more failed test.
#
#   vm/check.sh [rloop|loop]     STRESS_ITERATIONS=N for longer stress runs
source "$(dirname "$0")/common.sh"

prefix=${1:-rloop}
out="$CACHE_DIR/guest-out/selftests"
mkdir -p "$out" "$CACHE_DIR/logs"
make -s -C "$REPO_DIR/selftests" OUTPUT="$out" KSRC="$CACHE_DIR/src/linux" >/dev/null

tap_log="$CACHE_DIR/logs/check-$prefix.tap"
set +e
"$REPO_DIR/vm/run.sh" --timeout 4000 -- \
	"PREFIXES=$prefix STRESS_ITERATIONS=${STRESS_ITERATIONS:-} $REPO_DIR/selftests/run_all.sh" |
	tee "$tap_log"
vm_status=${PIPESTATUS[0]}
set -e

if ((vm_status != 0)); then
	echo "not ok 1 - vm: the VM run failed (exit status $vm_status: failed test, timeout, panic or kernel log error)" >>"$tap_log"
fi
# Count again on the host, so that the VM's own verdict is included, and
# end with the summary line.
echo "# ==== summary ($prefix), VM status $vm_status; TAP log: $tap_log ===="
"$REPO_DIR/selftests/summarize.sh" <"$tap_log" >"$tap_log.summary" && status=0 || status=1
tail -n 2 "$tap_log.summary"
exit "$status"
