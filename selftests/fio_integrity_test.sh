#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Data integrity through the device: fio writes with crc32c verify, buffered
# and O_DIRECT, at several block sizes, with the backing file opened buffered
# and with --direct-io=on; after each pass the device must equal its backing
# file byte for byte, also through an offset/sizelimit window (whose outside
# must stay untouched). Then once more, shorter, with the backing file on
# ext4 on the VM's virtio-blk scratch disk (real storage: the backing I/O
# reaches a disk through a journaling file system, in both device modes).
# Sizes are small: this runs under TCG with KASAN.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test fio_integrity_test

MiB=$((1024 * 1024))
# A stalled fio run fails (and shows the stuck stacks) instead of hanging.
FIO_TIME_LIMIT=300
dev=$(loop_dev 0)
img=$WORK/disk.img

# fio_verify WHAT JOB...: one fio run (its start-up is slow under TCG) with a
# job per JOB "BS:SIZE:DIRECT", one after the other (stonewall): random writes
# over SIZE bytes of the device, then a crc32c read-back of every block. One
# TAP line per job, from fio's terse output (field 3 job name, field 5 error).
fio_verify() {
	local what=$1 job bs size direct args=() status=0 seen=0 ver name err
	shift
	for job; do
		IFS=: read -r bs size direct <<<"$job"
		args+=(--name="$what bs=$bs direct=$direct" --bs="$bs" --size="$size" --direct="$direct")
		if ((direct)); then
			args+=(--ioengine=libaio --iodepth=8)
		else
			args+=(--ioengine=psync --iodepth=1)
		fi
	done
	bounded "$FIO_TIME_LIMIT" fio --filename="$dev" --rw=randwrite --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--stonewall --randseed="$RANDOM" --output-format=terse "${args[@]}" \
		>"$WORK/fio.out" 2>&1 || status=$?
	while IFS=';' read -r ver _ name _ err _; do
		[[ $ver == 3 ]] || continue
		seen=$((seen + 1))
		if [[ $err == 0 ]]; then tap_ok "fio verify: $name"; else tap_not_ok "fio verify: $name (error $err)"; fi
	done <"$WORK/fio.out"
	if ((seen != $# || status != 0)); then
		tap_not_ok "fio $what: $seen of $# jobs reported, exit status $status"
		grep -v '^3;' "$WORK/fio.out" | tap_diag
	fi
}

# Flush and drop the device's page cache, so that what follows compares the
# backing file with what the driver reads back.
flush() { blockdev --flushbufs "$dev"; }

head -c $((8 * MiB)) /dev/urandom >"$img"

# --- whole file, buffered backing file --------------------------------------
require "attach" losetup "$dev" "$img"
# 512-byte I/O is slow under TCG: a smaller area for it.
fio_verify buffered-file 512:256k:0 512:256k:1 4k:4m:0 4k:4m:1 64k:8m:0 64k:8m:1 1m:8m:0 1m:8m:1
flush
check "device equals the backing file" cmp "$dev" "$img"
require "detach" detach_loop 0

# --- whole file, backing file in direct I/O mode ----------------------------
require "attach --direct-io=on" losetup --direct-io=on "$dev" "$img"
require "sysfs loop/dio is 1" sysfs_is 0 loop/dio 1
fio_verify direct-io-file 4k:4m:1 4k:4m:0 1m:8m:1 1m:8m:0
flush
check "device equals the backing file" cmp "$dev" "$img"
require "detach" detach_loop 0

# --- offset and size limit window -------------------------------------------
cp "$img" "$WORK/before.img"
require "attach -o 1M --sizelimit 4M" losetup -o $MiB --sizelimit $((4 * MiB)) "$dev" "$img"
require "size is the window" size_is "$dev" $((4 * MiB))
fio_verify window 64k:4m:0 4k:4m:1
flush
check "device equals the file's window" cmp -n $((4 * MiB)) -i 0:$MiB "$dev" "$img"
check "the file before the window is unchanged" cmp -n $MiB "$img" "$WORK/before.img"
check "the file after the window is unchanged" \
	cmp -i $((5 * MiB)):$((5 * MiB)) "$img" "$WORK/before.img"
require "detach" detach_loop 0

# --- backing file on ext4 on the virtio scratch disk ------------------------
require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)
lower=$WORK/lower
mkdir -p "$lower"
require "mkfs.ext4 on the scratch disk" bounded 120 mkfs_quiet ext4 "$disk"
require "mount ext4 on the scratch disk" bounded 60 mount "$disk" "$lower"
at_exit release_scratch_mount "$lower"
disk_img=$lower/disk.img
# Written in full: every read reaches the disk, none is a hole.
require "copy the backing file to the disk" \
	bounded 120 dd if="$img" of="$disk_img" bs=$MiB conv=fsync status=none
require "attach (file on the disk)" bounded 60 losetup "$dev" "$disk_img"
fio_verify disk-buffered-file 4k:4m:0 4k:4m:1 1m:8m:1
require "flush" bounded 60 flush
check "device equals the backing file on the disk" bounded 60 cmp "$dev" "$disk_img"
require "detach" bounded 60 detach_loop 0
require "attach --direct-io=on (file on the disk)" \
	bounded 60 losetup --direct-io=on "$dev" "$disk_img"
require "sysfs loop/dio is 1" sysfs_is 0 loop/dio 1
fio_verify disk-direct-io-file 4k:4m:1 1m:8m:0
require "flush" bounded 60 flush
check "device equals the backing file on the disk" bounded 60 cmp "$dev" "$disk_img"
require "detach" bounded 60 detach_loop 0
require "unmount the scratch disk" bounded 60 umount "$lower"
