#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The ioctl fuzzer (ioctl_fuzz.py), a short run for `make check`.
#
# Two modes:
# - differential: the same seed, single-threaded, on loop.c and on rust_loop
#   in this boot (loop.ko loaded, run, unloaded; rust_loop loaded, run,
#   unloaded: both want block major 7); the two traces of every call's
#   result must be identical. udev's event execution is paused meanwhile, so
#   that no udev probe holds a device open at a random moment (EBUSY from
#   LOOP_CTL_REMOVE would then depend on timing, not on the driver).
# - chaos: FUZZ_WORKERS processes at once on the driver under test; every
#   one must finish within FUZZ_CHAOS_SECONDS, and the kernel log must stay
#   clean (checked at the end, as in every test).
#
# `make check` runs the suite once per LOOP_PREFIX. The differential mode
# needs both drivers, so it runs only for LOOP_PREFIX=rloop (the driver under
# test compared with the reference); LOOP_PREFIX=loop runs chaos only, which
# shows that loop.c itself survives what rust_loop is asked to survive.
#
# Settings: FUZZ_SEED (default 13), FUZZ_OPS (differential, per driver and
# round, default 1500), FUZZ_ROUNDS (1: rounds of FUZZ_OPS with seeds
# FUZZ_SEED, FUZZ_SEED+1, ..., each diffed on its own, so that one divergence,
# after which the drivers' states differ, does not hide the next),
# FUZZ_WORKERS (4), FUZZ_CHAOS_OPS (per worker, 300), FUZZ_CHAOS_SECONDS (240),
# FUZZ_TOLERATE (names of reported, not deliberate divergences to skip while
# looking for others: blocksize64; empty by default).
# vm/fuzz.sh (`make fuzz`) runs this with large counts. Every device is detached, devices beyond 0..7 removed and the
# driver unloaded after each run, so the rest of the suite starts clean.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
export PYTHONDONTWRITEBYTECODE=1

seed=${FUZZ_SEED:-13}
ops=${FUZZ_OPS:-1500}
rounds=${FUZZ_ROUNDS:-1}
workers=${FUZZ_WORKERS:-4}
chaos_ops=${FUZZ_CHAOS_OPS:-300}
chaos_seconds=${FUZZ_CHAOS_SECONDS:-240}
fuzz() { python3 "$here/ioctl_fuzz.py" "$@"; }

tap_start ioctl_fuzz_test
WORK=$(mktemp -d "$SCRATCH/ioctl_fuzz.XXXXXX")
at_exit rm -rf "$WORK"
under_test=$LOOP_PREFIX

# with_driver PREFIX COMMAND...: COMMAND with LOOP_PREFIX=PREFIX.
with_driver() { local LOOP_PREFIX=$1; shift; "$@"; }

# cleanup_prefix PREFIX: detach, restore 0..7, unload (whatever was left).
cleanup_prefix() {
	local LOOP_PREFIX=$1
	driver_loaded || return 0
	fuzz cleanup "$LOOP_PREFIX" || true
	cleanup_driver
}
at_exit cleanup_prefix loop
at_exit cleanup_prefix rloop
at_exit udevadm control --start-exec-queue

# trace_run PREFIX ROUND: one differential run into $WORK/trace.PREFIX.ROUND,
# then back to the state after load.
trace_run() {
	local prefix=$1 round=$2 status=0
	udevadm settle || true
	udevadm control --stop-exec-queue || return 1
	# Identical paths in both runs: file names appear in the results.
	rm -rf "$WORK/run" && mkdir "$WORK/run"
	bounded $((ops / 2 + 300)) fuzz trace "$prefix" "$WORK/run/files" \
		$((seed + round)) "$ops" "$WORK/trace.$prefix.$round" || status=$?
	bounded 60 fuzz cleanup "$prefix" || status=1
	udevadm control --start-exec-queue
	# udev now works through the run's queued events, opening devices:
	# let it finish before anything counts openers (rmmod, REMOVE).
	udevadm settle --timeout=300 || echo "udev did not settle within 300 s" >&2
	return "$status"
}

# traces_identical ROUND: print the first differences (the first one
# matters: after it the two drivers' states may differ) and fail if any.
traces_identical() {
	local a=$WORK/trace.loop.$1 b=$WORK/trace.rloop.$1 diffs
	[[ -s $a && -s $b ]] || { echo "a trace is missing"; return 1; }
	diff -u "$a" "$b" >"$WORK/trace.diff" && return 0
	diffs=$(grep -c '^[-+][^-+]' "$WORK/trace.diff" || true)
	echo "$diffs differing lines; the first ones (- loop.c, + rust_loop):"
	head -60 "$WORK/trace.diff"
	return 1
}

if [[ $under_test == rloop ]]; then
	check "rust_loop and loop.c are not loaded" \
		with_driver loop driver_unloaded
	require "rust_loop is not loaded" with_driver rloop driver_unloaded
	for prefix in loop rloop; do
		require "load $(with_driver "$prefix" driver_module_name) for the differential run" \
			with_driver "$prefix" load_driver
		for ((round = 0; round < rounds; round++)); do
			check "differential run on $prefix ($ops operations, seed $((seed + round)))" \
				trace_run "$prefix" "$round"
		done
		# check, not require: the traces are worth comparing anyway.
		check "unload $(with_driver "$prefix" driver_module_name)" \
			with_driver "$prefix" cleanup_driver
	done
	for ((round = 0; round < rounds; round++)); do
		check "seed $((seed + round)): loop.c and rust_loop give identical results for every call" \
			traces_identical "$round"
	done
fi

require "load $(driver_module_name) for the chaos run" load_driver
check "chaos: $workers workers x $chaos_ops operations finish within ${chaos_seconds}s" \
	bounded $((chaos_seconds + 60)) fuzz chaos "$LOOP_PREFIX" "$WORK/chaos" "$seed" \
	"$chaos_ops" "$workers" "$chaos_seconds"
check "every device detached, 0..7 restored, the rest removed" bounded 60 fuzz cleanup "$LOOP_PREFIX"
check "unload $(driver_module_name) after the test" cleanup_driver
