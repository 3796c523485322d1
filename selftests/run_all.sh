#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM (vm/run.sh): the functional suite once per driver in
# $PREFIXES (default "rloop"; "rloop loop" adds the loop.c comparison run),
# all through summarize.sh, whose last line is "N passed, N failed"; then a
# kmemleak scan (kmemleak_check.sh) fails on any leak through the drivers.
# CHECK_TESTS="a_test.sh b_test.sh" runs only those tests (and the kernel
# log check).
# The repository is read-only in the guest: programs are built into (or,
# when the host built them already, taken from) $GUEST_OUT/selftests.
# Exit status: non-zero if anything failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${GUEST_OUT:?"run this inside the VM, where GUEST_OUT is set"}/selftests
mkdir -p "$out"

# lib.mk's runner writes each test's output to /dev/stdout, which virtme-ng
# points at its console port rather than at fd 1: that output would bypass
# summarize.sh. Point it at fd 1 while the suite runs.
stdout_link=$(readlink /dev/stdout)
if [[ $stdout_link != /proc/self/fd/1 ]]; then
	trap 'ln -sfn "$stdout_link" /dev/stdout' EXIT
	ln -sfn /proc/self/fd/1 /dev/stdout
fi

run_suites() {
	local prefix
	for prefix in ${PREFIXES:-rloop}; do
		echo "# ==== functional suite, LOOP_PREFIX=$prefix ===="
		# kernel_log_clean.sh checks the kernel log from this mark on.
		echo "rust_loop-selftests: suite begin LOOP_PREFIX=$prefix" >/dev/kmsg
		LOOP_PREFIX=$prefix make --no-print-directory -C "$here" OUTPUT="$out" \
			${CHECK_TESTS:+TEST_PROGS="$CHECK_TESTS kernel_log_clean.sh"} run_tests ||
			echo "Bail out! make run_tests failed for LOOP_PREFIX=$prefix"
	done
}

# After the last unload: no leak through the drivers under test (kmemleak).
check_leaks() {
	local prefix modules=()
	for prefix in ${PREFIXES:-rloop}; do
		[[ $prefix == rloop ]] && modules+=(rust_loop) || modules+=(loop)
	done
	echo "# ==== kmemleak scan after the suites ===="
	"$here/kmemleak_check.sh" "${modules[@]}" || true
}

{ run_suites; check_leaks; } 2>&1 | "$here/summarize.sh"
