#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# udev parity: after mkfs.ext4 -L on the device, and on its first partition
# after losetup -P, udev (woken by its inotify watch on the node) has probed
# the file system with blkid and made /dev/disk/by-uuid/<uuid> and
# /dev/disk/by-label/<label> point at it, and `mount UUID=<uuid>` mounts it.
# loop.c's loopN get this from Debian's own rules; rust_loop's rloopN from
# udev/60-rloop.rules, which vm/guest-init.sh installs in the guest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test udev_rules_test

MiB=$((1024 * 1024))
dev=$(loop_dev 0)
mnt=$WORK/mnt
mkdir "$mnt"

# link_is LINK TARGET: LINK appears (udev is asynchronous) and resolves to TARGET.
link_is() {
	wait_until 10 test -L "$1" || { echo "no $1" >&2; return 1; }
	equals "$(readlink -f "$1")" "$2" "$1"
}
# mount_by_uuid UUID DEVICE: mount UUID= mounts DEVICE, then unmounts it.
mount_by_uuid() {
	mount "UUID=$1" "$mnt" || return 1
	local src
	src=$(findmnt -n -o SOURCE "$mnt")
	umount "$mnt"
	equals "$(readlink -f "$src")" "$2" "mounted device"
}
# fs_links NODE LABEL: mkfs.ext4 -L LABEL on NODE, then the by-uuid and
# by-label links and mount UUID=.
fs_links() {
	local node=$1 label=$2 uuid
	# The attach's own change event: while udev handles it, the node's
	# inotify watch is off, and a mkfs that closes the node then goes
	# unseen (loop.c's loopN race the same way). A user's script settles
	# after losetup for the same reason.
	udevadm settle
	require "mkfs.ext4 -L $label ${node#/dev/}" mkfs.ext4 -q -F -L "$label" "$node"
	uuid=$(blkid -p -s UUID -o value "$node")
	check "by-uuid link of ${node#/dev/}" link_is "/dev/disk/by-uuid/$uuid" "$node"
	check "by-label link of ${node#/dev/}" link_is "/dev/disk/by-label/$label" "$node"
	check "mount UUID= mounts ${node#/dev/}" mount_by_uuid "$uuid" "$node"
}

# --- the whole device -----------------------------------------------------
img=$WORK/fs.img
truncate -s $((32 * MiB)) "$img"
require "attach" losetup "$dev" "$img"
fs_links "$dev" "${LOOP_PREFIX}-whole"
require "losetup -d" detach_loop 0
check "the links are gone after -d" \
	wait_until 10 test ! -e "/dev/disk/by-label/${LOOP_PREFIX}-whole"

# --- a partition after losetup -P -----------------------------------------
pimg=$WORK/parts.img
truncate -s $((40 * MiB)) "$pimg"
printf 'label: dos\nstart=2048, size=65536, type=83\n,,L\n' | sfdisk -q "$pimg"
require "attach -P" losetup -P "$dev" "$pimg"
require "p1 exists" test -b "${dev}p1"
fs_links "${dev}p1" "${LOOP_PREFIX}-part1"
require "losetup -d" detach_loop 0
