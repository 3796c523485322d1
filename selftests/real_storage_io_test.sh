#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# I/O through the device with its backing file on real storage: ext4 and xfs
# on the VM's virtio-blk scratch disk (vm/run.sh --disk), not tmpfs. For each
# file system, with the device in buffered and in direct-I/O mode: 4k random
# writes then reads at QD1 (psync), QD32 (libaio and io_uring), 1 MiB
# sequential writes with fsync and reads, every block verified (crc32c).
#
# Every fio run is bounded in time: a run that does not finish is a failure
# that shows the stuck tasks' kernel stacks and the in-flight counters. This
# is what a driver calling the backing file system from inside the
# submitter's submit_bio does: the lower bio waits on the submitter's
# bio_list, which is only dispatched once the submission returns (a direct
# read never completes).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test real_storage_io_test

MiB=$((1024 * 1024))
FIO_TIME_LIMIT=150
dev=$(loop_dev 0)
lower=$WORK/lower
mkdir -p "$lower"

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)

# fio_job NAME FIO-OPTIONS...: one bounded fio run on the device whose write
# phase is verified by a crc32c read-back; one TAP line.
fio_job() {
	local name=$1 status=0
	shift
	bounded "$FIO_TIME_LIMIT" fio --name="$name" --filename="$dev" --randseed="$RANDOM" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse "$@" \
		>"$WORK/fio.out" 2>&1 || status=$?
	if ((status == 0)) && grep -q '^3;' "$WORK/fio.out"; then
		tap_ok "$name"
		return 0
	fi
	tap_not_ok "$name (status $status)"
	tap_diag <"$WORK/fio.out"
	# A stuck job leaves the device unusable: nothing after it can be trusted.
	((status != 124)) || exit 1
}

for fs in ext4 xfs; do
	require "mkfs.$fs on the scratch disk" mkfs_quiet "$fs" "$disk"
	require "mount $fs (strictatime)" mount -o strictatime "$disk" "$lower"
	img=$lower/disk.img
	# Written in full: every read reaches the disk, none is a hole.
	require "write a 64 MiB backing file on $fs" \
		dd if=/dev/urandom of="$img" bs=$MiB count=64 conv=fsync status=none
	for dio in off on; do
		what="$fs, --direct-io=$dio"
		require "attach ($what)" losetup --direct-io=$dio "$dev" "$img"
		check "sysfs loop/dio ($what)" sysfs_is 0 loop/dio "$([[ $dio == on ]] && echo 1 || echo 0)"
		drop_caches
		# Small sizes: this runs under TCG with KASAN.
		fio_job "$what: 4k QD1 psync" --direct=1 --ioengine=psync --iodepth=1 \
			--rw=randwrite --bs=4k --size=2m
		fio_job "$what: 4k QD32 libaio" --direct=1 --ioengine=libaio --iodepth=32 \
			--rw=randwrite --bs=4k --size=4m
		fio_job "$what: 4k QD32 io_uring" --direct=1 --ioengine=io_uring --iodepth=32 \
			--rw=randwrite --bs=4k --size=4m
		fio_job "$what: 1 MiB sequential, fsync" --direct=1 --ioengine=psync --iodepth=1 \
			--rw=write --bs=1m --size=16m --fsync=4
		fio_job "$what: 4k QD1 buffered" --direct=0 --ioengine=psync --iodepth=1 \
			--rw=randwrite --bs=4k --size=2m --end_fsync=1
		require "detach ($what)" detach_loop 0
	done
	require "unmount $fs" umount "$lower"
done
