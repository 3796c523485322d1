#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Reads of an unbound device must never make a later mount fail.
#
# unbound_mount runs 32 owners, each with its own device and cramfs image:
# while a reader thread hammers the device (buffered and O_DIRECT), the owner
# binds the image, mounts it, checks a file's checksum, unmounts and detaches,
# STRESS_ITERATIONS rounds. A driver that lets an unbound or half-bound device
# complete reads with made-up data (zeros) poisons the page cache and the next
# mount fails or reads wrong data.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

rounds=$(stress_iterations 3)
threads=32
first_index=16	# above loop.c's 8 default devices; LOOP_CTL_ADD creates the rest

stress_cleanup() {
	local mnt
	for mnt in "$STRESS_WORK"/mnt*; do
		if mountpoint -q "$mnt"; then umount "$mnt"; fi
	done
}

stress_init
tool=$(stress_tool unbound_mount) || stress_finish fail "unbound_mount is not built"

# A different file per image, so one device serving another's data shows.
for ((i = 0; i < threads; i++)); do
	mkdir -p "$STRESS_WORK/src$i" "$STRESS_WORK/mnt$i"
	head -c 200K /dev/urandom >"$STRESS_WORK/src$i/data"
	mkfs.cramfs "$STRESS_WORK/src$i" "$STRESS_WORK/img$i" >/dev/null ||
		stress_finish fail "mkfs.cramfs failed"
done

"$tool" "$(loop_ctl)" "/dev/$LOOP_PREFIX" "$first_index" "$threads" "$rounds" "$STRESS_WORK" \
	>"$STRESS_WORK/out" 2>"$STRESS_WORK/err"
status=$?
head -20 "$STRESS_WORK/err" | while IFS= read -r line; do stress_note "$line"; done
stress_note "unbound_mount: $(cat "$STRESS_WORK/out")"

out=$STRESS_WORK/out
summary="$LOOP_PREFIX: $rounds rounds x $threads devices, $(tool_count "$out" mount_failures) mount failures,\
 $(tool_count "$out" checksum_errors) checksum errors, $(tool_count "$out" other_errors) other errors"
stress_note "$summary"
((status == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary (exit $status)"
