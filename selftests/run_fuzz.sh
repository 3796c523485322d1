#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM (vm/fuzz.sh, `make fuzz`): the ioctl fuzzer alone, for
# long runs, once per driver in $PREFIXES (default "rloop loop"), then the
# kernel log check over the whole run and a kmemleak scan; all through
# summarize.sh, whose last line is "N passed, N failed".
#
# FUZZ_ITERATIONS=N operations per driver and mode: N single-threaded
# differential operations (in rounds of FUZZ_ROUND_OPS, default 2000, seeds
# FUZZ_SEED, FUZZ_SEED+1, ...; the differential mode runs in the rloop pass,
# which loads both drivers) and N chaos operations spread over FUZZ_WORKERS
# (default 4) processes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export LOOP_TEST_BIN=${GUEST_OUT:?"run this inside the VM, where GUEST_OUT is set"}/selftests

iterations=${FUZZ_ITERATIONS:-20000}
round_ops=${FUZZ_ROUND_OPS:-2000}
((round_ops <= iterations)) || round_ops=$iterations
export FUZZ_SEED=${FUZZ_SEED:-$(date +%s)}
export FUZZ_WORKERS=${FUZZ_WORKERS:-4}
export FUZZ_OPS=$round_ops
export FUZZ_ROUNDS=$(((iterations + round_ops - 1) / round_ops))
export FUZZ_CHAOS_OPS=$(((iterations + FUZZ_WORKERS - 1) / FUZZ_WORKERS))
# Generous: a stuck worker is what this bound is for, not a slow one.
export FUZZ_CHAOS_SECONDS=$((600 + FUZZ_CHAOS_OPS))

# run_one NUMBER LABEL SCRIPT [ARGS...]: one test as the kselftest runner
# reports it: its own TAP one level down, then its result line.
run_one() {
	local number=$1 name status=0
	name="$2: $(basename "$3")"
	shift 2
	echo "# selftests: $name"
	"$@" 2>&1 | sed 's/^/# /' || status=$?
	case $status in
	0) echo "ok $number selftests: $name" ;;
	*) echo "not ok $number selftests: $name # exit=$status" ;;
	esac
}

run_all() {
	local prefix number=0 modules=()
	echo "TAP version 13"
	echo "# fuzz: FUZZ_SEED=$FUZZ_SEED, $FUZZ_ROUNDS rounds x $FUZZ_OPS differential" \
		"operations, $FUZZ_WORKERS workers x $FUZZ_CHAOS_OPS chaos operations"
	echo "rust_loop-selftests: suite begin fuzz" >/dev/kmsg
	for prefix in ${PREFIXES:-rloop loop}; do
		number=$((number + 1))
		[[ $prefix == rloop ]] && modules+=(rust_loop) || modules+=(loop)
		LOOP_PREFIX=$prefix run_one "$number" "$prefix" "$here/ioctl_fuzz_test.sh"
	done
	run_one $((number + 1)) all "$here/kernel_log_clean.sh"
	run_one $((number + 2)) all "$here/kmemleak_check.sh" "${modules[@]}"
	echo "1..$((number + 2))"
}

run_all 2>&1 | "$here/summarize.sh"
