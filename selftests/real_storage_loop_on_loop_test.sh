#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A device whose backing file is another device of the driver under test
# (losetup /dev/rloop1 /dev/rloop0), the lower one backed by a file on ext4
# (strictatime) on the VM's virtio-blk scratch disk, with ext4 (1 KiB blocks)
# on the top one: the lower device in buffered mode, the top one in buffered
# and in direct-I/O mode, then the lower one in direct-I/O mode under a
# buffered top one. The workload of real_storage_stacked_test.sh
# (stacked_lib.sh): metadata work with cold caches, fill, then an online grow
# through both devices (backing file, LOOP_SET_CAPACITY on the lower device,
# then on the top one, whose backing "file" is the lower block device;
# resize2fs on the mounted file system), data into the new space, cold read
# back, unmount, e2fsck.
#
# Both devices' workers run nested: a request of the top device does I/O to
# the lower device from a worker of the same driver, which must neither wait
# on itself (a shared worker or lock, a bio parked on the submitter's
# bio_list) nor lose a capacity change. Pass: every step ends in time, the
# sizes and df follow the grow, data intact, e2fsck clean, kernel log clean.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test real_storage_loop_on_loop_test
source "$(dirname "$0")/stacked_lib.sh"

bottom=$(loop_dev 0)
top=$(loop_dev 1)
lower=$WORK/lower
img=$lower/bottom.img
mkdir -p "$lower"
at_exit release_scratch_mount "$lower"

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)
stacked_init

# grow_both: the grow callback of stacked_round, bottom up.
grow_both() {
	truncate -s "$grown_size" "$img" && losetup -c "$bottom" &&
		size_is "$bottom" "$grown_size" && losetup -c "$top"
}

require "mkfs.ext4 on the scratch disk" bounded 120 mkfs_quiet ext4 "$disk"
require "mount ext4 (strictatime) on the scratch disk" bounded 60 mount -o strictatime "$disk" "$lower"
grown_size=$((96 * MiB))
# BOTTOM-DIO TOP-DIO
for modes in "off off" "off on" "on off"; do
	read -r bottom_dio top_dio <<<"$modes"
	what="ext4 on $(basename "$top") (--direct-io=$top_dio) on $(basename "$bottom") (--direct-io=$bottom_dio) on ext4"
	require "create the backing file ($what)" truncate -s 64M "$img"
	require "attach the bottom device ($what)" \
		bounded 60 losetup --direct-io="$bottom_dio" "$bottom" "$img"
	require "attach the top device to the bottom one ($what)" \
		bounded 60 losetup --direct-io="$top_dio" "$top" "$bottom"
	check "the top device's backing file is the bottom device ($what)" \
		sysfs_is 1 loop/backing_file "$bottom"
	check "the top device is in the mode asked for ($what)" \
		sysfs_is 1 loop/dio "$([[ $top_dio == on ]] && echo 1 || echo 0)"
	stacked_round "$what" "$top" ext4 "$grown_size" grow_both -b1024
	require "detach the top device ($what)" bounded 60 detach_loop 1
	require "detach the bottom device ($what)" bounded 60 detach_loop 0
	rm -f "$img"
done
require "unmount the scratch disk" umount "$lower"
