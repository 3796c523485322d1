#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# I/O errors under a filesystem load, after xfstests generic/019.
#
# ext4 on the device runs io_error_load (pwrite+fsync, mmap writes+msync,
# O_DIRECT reads) healthy, then again while rust_loop's fault injection
# (/sys/block/rloopN/loop/fault_inject) fails requests. The tasks must see
# EIO or SIGBUS and finish, the filesystem must unmount, and with injection
# off and after `e2fsck -fy` the device must work again (mount, write, read).
# Every iteration uses another injection setting. The kernel log must show
# no kernel bug. loop.c has no fault injection: SKIP there.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

iterations=$(stress_iterations 3)
# <ops> <after> <percent>: requests that still succeed, then the failure odds.
settings=("rw 0 100" "write 20 50" "read 0 50")
workers=6
dev=$(loop_dev 0)
mnt=
knob=$(loop_sys 0)/loop/fault_inject

stress_cleanup() {
	if [[ -n $mnt ]] && mountpoint -q "$mnt"; then umount "$mnt"; fi
	if [[ -e $knob ]]; then echo off >"$knob"; fi
	if loop_bound 0; then losetup -d "$dev"; fi
	wait_loop_unbound 0
}

# load SECONDS OUTFILE: run io_error_load on the mounted filesystem, bounded.
load() {
	run_bounded $(($1 + 120)) "$tool" "$mnt" "$workers" "$1" >"$2" 2>"$2.err"
	local status=$?
	head -10 "$2.err"
	return "$status"
}

# one_iteration SETTING: healthy load, faulty load, unmount, fsck, reuse.
# Prints what went wrong and returns 1 on the first failure.
one_iteration() {
	local setting=$1 out=$STRESS_WORK/out pid fsck_status
	mount "$dev" "$mnt" || { echo "mount failed"; return 1; }
	load 2 "$out.healthy" || { echo "healthy load failed"; return 1; }
	if ! grep -q ' eio=0 sigbus=0 erofs=0 other_errors=0$' "$out.healthy"; then
		echo "errors without fault injection: $(cat "$out.healthy")"
		return 1
	fi

	# Turn failures on while the load runs, so in-flight I/O meets them too.
	load 8 "$out.faulty" &
	pid=$!
	sleep 2
	echo "$setting" >"$knob" || { echo "cannot write '$setting' to $knob"; wait "$pid"; return 1; }
	wait "$pid" || { echo "faulty load failed or hung"; return 1; }
	echo "load: $(cat "$out.faulty"); $knob: $(cat "$knob")"
	eio=$(tool_count "$out.faulty" eio) sigbus=$(tool_count "$out.faulty" sigbus)
	total_eio=$((total_eio + eio)) total_sigbus=$((total_sigbus + sigbus))
	((eio + sigbus > 0)) || { echo "no task saw EIO or SIGBUS"; return 1; }
	[[ $(cat "$knob") =~ injected=[1-9] ]] || { echo "fault_inject reports no injected failure"; return 1; }
	umount "$mnt" || { echo "umount failed after I/O errors"; return 1; }

	echo off >"$knob"
	e2fsck -fy "$dev" >"$out.fsck" 2>&1
	fsck_status=$?
	# 0: clean, 1/2: errors fixed; 4 and up: errors left or e2fsck failed.
	if ((fsck_status >= 4)); then
		echo "e2fsck -fy exit $fsck_status:"
		head -20 "$out.fsck"
		return 1
	fi
	mount "$dev" "$mnt" || { echo "mount after e2fsck failed"; return 1; }
	if ! { cp "$STRESS_WORK/reference" "$mnt/reference" && umount "$mnt" &&
		mount "$dev" "$mnt" && cmp "$STRESS_WORK/reference" "$mnt/reference"; }; then
		echo "write+read after e2fsck failed"
		return 1
	fi
	umount "$mnt" || { echo "umount failed"; return 1; }
}

stress_init
[[ $LOOP_PREFIX == rloop ]] || stress_finish skip "$LOOP_PREFIX: loop.c has no fault injection"
tool=$(stress_tool io_error_load) || stress_finish fail "io_error_load is not built"
mnt=$STRESS_WORK/mnt
mkdir "$mnt"
head -c 1M /dev/urandom >"$STRESS_WORK/reference"
truncate -s 128M "$STRESS_WORK/ext4.img"
bind_file 0 "$STRESS_WORK/ext4.img" || stress_finish fail "losetup failed"
[[ -e $knob ]] || stress_finish fail "$knob is missing on a bound device"
mkfs.ext4 -q -F "$dev" || stress_finish fail "mkfs.ext4 failed"

failures=0 total_eio=0 total_sigbus=0
for ((i = 0; i < iterations; i++)); do
	setting=${settings[i % ${#settings[@]}]}
	one_iteration "$setting" >"$STRESS_WORK/log" || ((failures++))
	while IFS= read -r line; do stress_note "iteration $((i + 1)) ($setting): $line"; done <"$STRESS_WORK/log"
	# A failed iteration may leave it mounted or failing: start the next clean.
	if mountpoint -q "$mnt"; then umount "$mnt"; fi
	echo off >"$knob"
done

summary="$LOOP_PREFIX: $iterations iterations, $failures failed, tasks saw $total_eio EIO and $total_sigbus SIGBUS"
stress_note "$summary"
((failures == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary"
