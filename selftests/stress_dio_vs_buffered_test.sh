#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Direct against buffered I/O on ext4 (1 KiB blocks), after xfstests generic/418.
#
# dio_buffered_race has several threads, each owning a 1.5-page region of one
# file (so neighbours share pages), write patterns with O_DIRECT and read them
# back buffered, and the other way round; every byte is checked. It runs once
# with the device in buffered mode and once in direct-I/O mode, then e2fsck
# must find the filesystem clean.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

iterations=$(stress_iterations 300)
threads=4
region=6144
dev=$(loop_dev 0)

stress_cleanup() {
	if mountpoint -q "$STRESS_WORK/mnt"; then umount "$STRESS_WORK/mnt"; fi
	if loop_bound 0; then losetup -d "$dev"; fi
	wait_loop_unbound 0
}

# run_mode buffered|direct: one full pass; prints the tool's summary line.
run_mode() {
	local mode=$1 out=$STRESS_WORK/out.$1
	truncate -s 64M "$STRESS_WORK/ext4.img"
	bind_file_in_mode 0 "$STRESS_WORK/ext4.img" "$mode" || return 1
	mkfs.ext4 -q -F -b 1024 "$dev" || { echo "$mode: mkfs.ext4 failed"; return 1; }
	mount "$dev" "$STRESS_WORK/mnt" || { echo "$mode: mount failed"; return 1; }
	"$tool" "$STRESS_WORK/mnt/file" "$threads" "$region" "$iterations" >"$out" 2>"$out.err"
	local status=$?
	head -20 "$out.err" | sed "s/^/$mode: /"
	echo "$mode: $(cat "$out")"
	umount "$STRESS_WORK/mnt" || { echo "$mode: umount failed"; return 1; }
	if ! e2fsck -fn "$dev" >"$out.fsck" 2>&1; then
		echo "$mode: e2fsck found errors:"
		head -20 "$out.fsck"
		status=1
	fi
	if ! detach_loop 0; then
		echo "$mode: detach failed"
		return 1
	fi
	rm -f "$STRESS_WORK/ext4.img"
	return "$status"
}

stress_init
tool=$(stress_tool dio_buffered_race) || stress_finish fail "dio_buffered_race is not built"
mkdir "$STRESS_WORK/mnt"

failed=0 mismatches=0 io_errors=0
for mode in buffered direct; do
	run_mode "$mode" >"$STRESS_WORK/log" || ((failed++))
	while IFS= read -r line; do stress_note "$line"; done <"$STRESS_WORK/log"
	m=$(tool_count "$STRESS_WORK/out.$mode" mismatches)
	e=$(tool_count "$STRESS_WORK/out.$mode" io_errors)
	mismatches=$((mismatches + ${m/\?/0}))
	io_errors=$((io_errors + ${e/\?/0}))
done

summary="$LOOP_PREFIX: $iterations iterations x $threads threads in buffered and direct-I/O mode,\
 $mismatches mismatches, $io_errors I/O errors"
stress_note "$summary"
((failed == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary, $failed of 2 modes failed"
