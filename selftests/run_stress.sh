#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM (vm/stress.sh): the stress tests alone, for long runs,
# once per driver in $PREFIXES (default "rloop loop": rust_loop, then loop.c,
# in the same boot), then the kernel log check over the whole run; all through
# summarize.sh, whose last line is "N passed, N failed".
#
# The tests run straight rather than through lib.mk's runner, whose per-test
# timeout would end a long run. Iteration counts come from the environment:
# STRESS_ITERATIONS for every test, STRESS_ITERATIONS_<name> for one test
# (<name>: partscan, unbound_read, dio_vs_buffered, io_error, dio_truncate).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export LOOP_TEST_BIN=${GUEST_OUT:?"run this inside the VM, where GUEST_OUT is set"}/selftests

# run_one NUMBER LABEL SCRIPT: one test as the kselftest runner reports it:
# its own TAP one level down, then its result line (exit status 4 is a skip).
run_one() {
	local number=$1 name status=0
	name="$2: $(basename "$3")"
	echo "# selftests: $name"
	"$3" 2>&1 | sed 's/^/# /' || status=$?
	case $status in
	0) echo "ok $number selftests: $name" ;;
	4) echo "ok $number selftests: $name # SKIP" ;;
	*) echo "not ok $number selftests: $name # exit=$status" ;;
	esac
}

run_suites() {
	local prefix script number=0
	echo "TAP version 13"
	# kernel_log_clean.sh checks the kernel log from this mark on.
	echo "rust_loop-selftests: suite begin stress" >/dev/kmsg
	for prefix in ${PREFIXES:-rloop loop}; do
		echo "# ==== stress tests, LOOP_PREFIX=$prefix ===="
		for script in "$here"/stress_*_test.sh; do
			number=$((number + 1))
			LOOP_PREFIX=$prefix run_one "$number" "$prefix" "$script"
		done
	done
	run_one $((number + 1)) all "$here/kernel_log_clean.sh"
	echo "1..$((number + 1))"
}

run_suites 2>&1 | "$here/summarize.sh"
