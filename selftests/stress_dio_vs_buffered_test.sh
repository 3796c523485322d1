#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Direct against buffered I/O on ext4 (1 KiB blocks), after xfstests generic/418.
#
# dio_buffered_race has several threads, each owning a 1.5-page region of one
# file (so neighbours share pages), write patterns with O_DIRECT and read them
# back buffered, and the other way round; every byte is checked. It runs once
# with the device in buffered mode and once in direct-I/O mode, with the
# backing file on $SCRATCH (tmpfs), then, with a fifth of the iterations, in
# both modes again with the backing file on ext4 on the VM's virtio-blk
# scratch disk (real storage: the device's backing I/O goes through a
# journaling file system to a disk). After each pass e2fsck must find the
# filesystem clean.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

iterations=$(stress_iterations 300)
threads=4
region=6144
dev=$(loop_dev 0)

stress_cleanup() {
	if mountpoint -q "$STRESS_WORK/mnt"; then bounded 60 umount "$STRESS_WORK/mnt"; fi
	if loop_bound 0; then bounded 30 losetup -d "$dev"; fi
	wait_loop_unbound 0
	if mountpoint -q "$STRESS_WORK/disk"; then bounded 60 umount "$STRESS_WORK/disk"; fi
}

# run_mode buffered|direct DIR ITERATIONS: one full pass with the backing
# file in DIR; prints the tool's summary line. Every step is bounded in time
# (lib.sh's bounded): a stall fails the pass and shows the stuck stacks.
run_mode() {
	local mode=$1 img=$2/ext4.img iterations=$3 out=$STRESS_WORK/out.$1
	truncate -s 64M "$img"
	bind_file_in_mode 0 "$img" "$mode" || return 1
	bounded 120 mkfs.ext4 -q -F -b 1024 "$dev" 2>&1 || { echo "$mode: mkfs.ext4 failed"; return 1; }
	bounded 60 mount "$dev" "$STRESS_WORK/mnt" 2>&1 || { echo "$mode: mount failed"; return 1; }
	# About 0.1 s per iteration under TCG with KASAN on tmpfs.
	bounded $((120 + iterations)) "$tool" "$STRESS_WORK/mnt/file" "$threads" "$region" \
		"$iterations" >"$out" 2>"$out.err"
	local status=$?
	head -20 "$out.err" | sed "s/^/$mode: /"
	echo "$mode: $(cat "$out")"
	bounded 60 umount "$STRESS_WORK/mnt" 2>&1 || { echo "$mode: umount failed"; return 1; }
	if ! bounded 120 e2fsck -fn "$dev" >"$out.fsck" 2>&1; then
		echo "$mode: e2fsck found errors:"
		head -20 "$out.fsck"
		status=1
	fi
	if ! detach_loop 0; then
		echo "$mode: detach failed"
		return 1
	fi
	rm -f "$img"
	return "$status"
}

stress_init
tool=$(stress_tool dio_buffered_race) || stress_finish fail "dio_buffered_race is not built"
mkdir "$STRESS_WORK/mnt"

disk_iterations=$(((iterations + 4) / 5))
disk=$(scratch_disk 2>&1) || stress_finish fail "$disk"
mkdir "$STRESS_WORK/disk"
bounded 120 mkfs_quiet ext4 "$disk" || stress_finish fail "mkfs.ext4 on the scratch disk failed"
bounded 60 mount "$disk" "$STRESS_WORK/disk" || stress_finish fail "cannot mount the scratch disk"

failed=0 mismatches=0 io_errors=0
# WHERE MODE DIR ITERATIONS
for pass in "tmpfs buffered $STRESS_WORK $iterations" "tmpfs direct $STRESS_WORK $iterations" \
	"disk buffered $STRESS_WORK/disk $disk_iterations" \
	"disk direct $STRESS_WORK/disk $disk_iterations"; do
	read -r where mode dir n <<<"$pass"
	rm -f "$STRESS_WORK/out.$mode"
	run_mode "$mode" "$dir" "$n" >"$STRESS_WORK/log" 2>&1 || ((++failed))
	while IFS= read -r line; do stress_note "$where $line"; done <"$STRESS_WORK/log"
	m=$(tool_count "$STRESS_WORK/out.$mode" mismatches)
	e=$(tool_count "$STRESS_WORK/out.$mode" io_errors)
	mismatches=$((mismatches + ${m/\?/0}))
	io_errors=$((io_errors + ${e/\?/0}))
done

summary="$LOOP_PREFIX: $iterations iterations x $threads threads in buffered and direct-I/O mode\
 on tmpfs, $disk_iterations on the virtio disk, $mismatches mismatches, $io_errors I/O errors"
stress_note "$summary"
((failed == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary, $failed of 4 passes failed"
