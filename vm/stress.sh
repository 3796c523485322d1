#!/bin/bash
# `make stress`: the stress tests alone, for long runs, against rust_loop and
# then loop.c in one boot of the debug (KASAN + lockdep) kernel; ends with
# "N passed, N failed". A VM failure (timeout, panic, a kernel log line that
# shows a bug) counts as one more failed test.
#
#   STRESS_ITERATIONS=N          iterations (or rounds) of every stress test
#   STRESS_ITERATIONS_<name>=N   of one test: partscan, unbound_read,
#                                dio_vs_buffered, io_error, dio_truncate
#   PREFIXES="rloop loop"        the drivers, in order
#   STRESS_TIMEOUT=SECONDS       the whole VM run (default 4 hours)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

out="$CACHE_DIR/guest-out/selftests"
mkdir -p "$out" "$CACHE_DIR/logs"
make -s -C "$REPO_DIR/selftests" OUTPUT="$out" KSRC="$CACHE_DIR/src/linux" >/dev/null

# Pass the iteration settings into the guest.
settings=()
while IFS= read -r setting; do
	settings+=("$setting")
done < <(env | grep -E '^(STRESS_ITERATIONS(_[a-z_]+)?|PREFIXES)=[a-z0-9 ]*$' || true)

tap_log="$CACHE_DIR/logs/stress.tap"
set +e
"$REPO_DIR/vm/run.sh" --timeout "${STRESS_TIMEOUT:-14400}" -- \
	"${settings[*]} $REPO_DIR/selftests/run_stress.sh" | tee "$tap_log"
vm_status=${PIPESTATUS[0]}
set -e

if ((vm_status != 0)); then
	echo "not ok 1 - vm: the VM run failed (exit status $vm_status: failed test, timeout, panic or kernel log error)" >>"$tap_log"
fi
echo "# ==== summary (stress), VM status $vm_status; TAP log: $tap_log ===="
"$REPO_DIR/selftests/summarize.sh" <"$tap_log" >"$tap_log.summary" && status=0 || status=1
tail -n 2 "$tap_log.summary"
exit "$status"
