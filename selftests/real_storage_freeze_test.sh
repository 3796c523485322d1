#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Freezing the backing file system while direct-I/O writes through the device
# are in flight, with the backing file on ext4 and on xfs on the VM's
# virtio-blk scratch disk.
#
# An asynchronous direct write holds the backing file system's freeze
# protection (sb_start_write) from its submission until its completion, and
# the completion must end it (kiocb_end_write's work): loop.c does it in
# lo_rw_aio_do_completion, rust_loop in async_io.rs. One write whose
# protection is never ended makes every later `fsfreeze -f` of that file
# system wait forever; one ended twice underflows the per-CPU count. So:
# freeze and thaw while fio writes at QD32, again once fio is done (nothing
# may be left holding the file system), and the data verified after the thaw.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test real_storage_freeze_test

MiB=$((1024 * 1024))
TIME_LIMIT=120
dev=$(loop_dev 0)
lower=$WORK/lower
mkdir -p "$lower"
# thaw_lower: for at_exit, after a failed step: a frozen lower file system
# would keep the teardown from unmounting it. Bounded: after a freeze that
# never finished, the thaw waits for it.
thaw_lower() { ! mountpoint -q "$lower" || bounded 30 fsfreeze -u "$lower" 2>/dev/null || true; }
at_exit release_scratch_mount "$lower"
at_exit thaw_lower

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)

# writes_done: write requests the device completed so far (its stat file).
writes_done() { awk '{ print $5 }' "$(loop_sys 0)/stat"; }
# writer_writing PID BEFORE: the background fio runs and the device completed
# more than 256 writes since BEFORE (fio takes seconds to start under TCG).
writer_writing() {
	kill -0 "$1" 2>/dev/null || { echo "fio ended before the freeze" >&2; return 1; }
	(($(writes_done) > $2 + 256)) || { echo "$(($(writes_done) - $2)) writes so far" >&2; return 1; }
}
# in_flight_writes: the device has writes in flight (held by the freeze).
in_flight_writes() {
	local reads writes
	read -r reads writes <"$(loop_sys 0)/inflight"
	((writes > 0)) || { echo "inflight: $reads $writes" >&2; return 1; }
}
# writer_ended PID: the background fio ends in time after the thaw.
writer_ended() {
	wait_until "$TIME_LIMIT" bash -c "! kill -0 $1 2>/dev/null" && return 0
	echo "fio still runs ${TIME_LIMIT}s after the thaw" >&2
	show_stuck "$1" >&2
	return 1
}
# writer_succeeded STATUS: fio's exit status, with its output when it failed.
writer_succeeded() {
	(($1 == 0)) && return 0
	echo "fio exited with $1:" >&2
	cat "$WORK/fio-writer.out" >&2
	return 1
}

for fs in ext4 xfs; do
	require "mkfs.$fs on the scratch disk" mkfs_quiet "$fs" "$disk"
	require "mount $fs" mount "$disk" "$lower"
	img=$lower/disk.img
	require "write a 32 MiB backing file on $fs" \
		dd if=/dev/urandom of="$img" bs=$MiB count=32 conv=fsync status=none
	require "attach --direct-io=on ($fs)" losetup --direct-io=on "$dev" "$img"
	check "sysfs loop/dio ($fs)" sysfs_is 0 loop/dio 1

	# Long enough to be writing when the freeze comes, whatever TCG's pace.
	fio --name=writer --filename="$dev" --direct=1 --ioengine=io_uring --iodepth=32 \
		--rw=randwrite --bs=4k --size=16m --time_based --runtime=20 \
		--output="$WORK/fio-writer.out" &
	writer=$!
	check "fio writes at QD32 ($fs)" wait_until 60 writer_writing "$writer" "$(writes_done)"
	# A freeze that does not finish leaves the file system unusable: stop.
	require "fsfreeze -f with writes in flight ($fs)" bounded "$TIME_LIMIT" fsfreeze -f "$lower"
	# The writes that reach the frozen file system wait in it.
	check "writes wait while $fs is frozen" wait_until 10 in_flight_writes
	check "fsfreeze -u ($fs)" bounded "$TIME_LIMIT" fsfreeze -u "$lower"
	check "fio ends after the thaw ($fs)" writer_ended "$writer"
	# wait in this shell (check's subshell is not fio's parent), once fio
	# ended: a stuck one has failed the step above and the test stops.
	kill -0 "$writer" 2>/dev/null && exit 1
	writer_status=0
	wait "$writer" || writer_status=$?
	check "fio's writes all succeeded ($fs)" writer_succeeded "$writer_status"
	require "fsfreeze -f with the device idle: no write holds $fs ($fs)" \
		bounded "$TIME_LIMIT" fsfreeze -f "$lower"
	check "fsfreeze -u again ($fs)" bounded "$TIME_LIMIT" fsfreeze -u "$lower"
	check "fio verify after the thaws ($fs)" bounded "$TIME_LIMIT" \
		fio --name=verify --filename="$dev" --direct=1 --ioengine=io_uring --iodepth=32 \
		--rw=randwrite --bs=4k --size=4m --verify=crc32c --do_verify=1 --verify_fatal=1
	require "detach ($fs)" detach_loop 0
	require "unmount $fs" umount "$lower"
done
