#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# End to end with the stock losetup (util-linux 2.38.1) on /dev/<prefix>0:
# attach, -r, -o/--sizelimit, -b, --direct-io, -P, -c, -l, -d, then an ext4
# file system made, filled, remounted and checked through the device.
# (-f, -a, -D and -j only know /dev/loop* names, so they are not used.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test losetup_test

MiB=$((1024 * 1024))
dev=$(loop_dev 0)
name=${LOOP_PREFIX}0
img=$WORK/disk.img
chunk=$WORK/chunk

# One line of `losetup -l` for the device, fixed columns, no header.
list_line() {
	losetup -l -n --raw -O NAME,SIZELIMIT,OFFSET,AUTOCLEAR,RO,BACK-FILE,DIO,LOG-SEC "$dev"
}
# write_chunk DEVICE_OFFSET: 64 KiB of $chunk into the device, flushed.
write_chunk() {
	dd if="$chunk" of="$dev" bs=64k seek="$(($1 / 65536))" conv=notrunc,fsync status=none
}
# same_bytes FILE1 SKIP1 FILE2 SKIP2 LENGTH
same_bytes() { cmp -n "$5" -i "$2:$4" "$1" "$3"; }
sha() { sha256sum <"$1"; }
loop_attrs_zero() {
	local a
	for a in offset sizelimit autoclear partscan dio; do
		sysfs_is 0 "loop/$a" 0 || return 1
	done
}
# `losetup DEV` prints "DEV: [BACKING-DEV]:INODE (FILE)" from LOOP_GET_STATUS64.
shows_backing_inode() {
	local out
	out=$(losetup "$dev")
	[[ $out == *":$(stat -c %i "$img") ($img)"* ]] || { echo "losetup printed: $out" >&2; return 1; }
}

head -c $((8 * MiB)) /dev/urandom >"$img"
head -c 65536 /dev/urandom >"$chunk"

# --- plain attach ---------------------------------------------------------
require "attach" losetup "$dev" "$img"
check "sysfs loop/backing_file is the file" sysfs_is 0 loop/backing_file "$img"
check "sysfs loop/offset, sizelimit, autoclear, partscan, dio are 0" loop_attrs_zero
check "size is the file's" size_is "$dev" $((8 * MiB))
check "content is the file's" cmp "$dev" "$img"
check "losetup DEV shows the backing inode and name" shows_backing_inode
write_chunk $((3 * 65536))
check "a write through the device reaches the file" same_bytes "$chunk" 0 "$img" $((3 * 65536)) 65536
require "losetup -d" detach_loop 0
check "size is 0 after -d" size_is "$dev" 0

# --- read-only ------------------------------------------------------------
before=$(sha "$img")
require "attach -r" losetup -r "$dev" "$img"
check "sysfs ro is 1" sysfs_is 0 ro 1
check "blockdev --getro says read-only" equals "$(blockdev --getro "$dev")" 1
check "losetup -l shows RO" equals "$(losetup -l -n --raw -O RO "$dev")" 1
check "a write to the device fails" fails dd if="$chunk" of="$dev" bs=64k count=1 conv=notrunc,fsync status=none
check "the file is unchanged" equals "$(sha "$img")" "$before"
require "losetup -d" detach_loop 0

# --- offset and size limit ------------------------------------------------
cp "$img" "$WORK/before.img"
require "attach -o 1M --sizelimit 2M" losetup -o $MiB --sizelimit $((2 * MiB)) "$dev" "$img"
check "size is the size limit" size_is "$dev" $((2 * MiB))
check "sysfs loop/offset" sysfs_is 0 loop/offset $MiB
check "sysfs loop/sizelimit" sysfs_is 0 loop/sizelimit $((2 * MiB))
check "content is the file's 1M..3M window" same_bytes "$dev" 0 "$img" $MiB $((2 * MiB))
check "losetup -l DEV" equals "$(list_line)" "$dev $((2 * MiB)) $MiB 0 0 $img 0 512"
write_chunk 65536
check "a write lands at the offset in the file" same_bytes "$chunk" 0 "$img" $((MiB + 65536)) 65536
check "a write past the size limit fails" fails write_chunk $((2 * MiB))
check "the file before the window is unchanged" same_bytes "$img" 0 "$WORK/before.img" 0 $MiB
check "the file after the window is unchanged" same_bytes "$img" $((3 * MiB)) "$WORK/before.img" $((3 * MiB)) $((5 * MiB))
require "losetup -d" detach_loop 0
rm "$WORK/before.img"

# --- logical block size ---------------------------------------------------
require "attach -b 4096" losetup -b 4096 "$dev" "$img"
check "queue/logical_block_size is 4096" sysfs_is 0 queue/logical_block_size 4096
check "blockdev --getss is 4096" equals "$(blockdev --getss "$dev")" 4096
check "losetup -l shows LOG-SEC 4096" equals "$(losetup -l -n --raw -O LOG-SEC "$dev")" 4096
check "content is the file's" cmp "$dev" "$img"
require "losetup -d" detach_loop 0
check "block size is back to 512 after -d" sysfs_is 0 queue/logical_block_size 512

# --- direct I/O -----------------------------------------------------------
require "attach --direct-io=on" losetup --direct-io=on "$dev" "$img"
check "sysfs loop/dio is 1" sysfs_is 0 loop/dio 1
check "content is the file's" cmp "$dev" "$img"
require "--direct-io=off DEV" losetup --direct-io=off "$dev"
check "sysfs loop/dio is 0" sysfs_is 0 loop/dio 0
require "--direct-io=on DEV" losetup --direct-io=on "$dev"
check "sysfs loop/dio is 1 again" sysfs_is 0 loop/dio 1
check "losetup -l shows DIO" equals "$(losetup -l -n --raw -O DIO "$dev")" 1
write_chunk $((5 * 65536))
check "a direct write reaches the file" same_bytes "$chunk" 0 "$img" $((5 * 65536)) 65536
require "losetup -d" detach_loop 0

# --- partitions -----------------------------------------------------------
pimg=$WORK/parts.img
truncate -s $((8 * MiB)) "$pimg"
printf 'label: dos\nstart=2048, size=4096, type=83\nstart=6144, size=8192, type=83\n' |
	sfdisk -q "$pimg"
dd if=/dev/urandom of="$pimg" bs=512 seek=2048 count=12288 conv=notrunc status=none
require "attach -P" losetup -P "$dev" "$pimg"
# No waiting: the scan must be complete when losetup returns.
check "p1 and p2 exist right after losetup -P" \
	test -b "${dev}p1" -a -b "${dev}p2" -a -d "$(loop_sys 0)/${name}p1" -a -d "$(loop_sys 0)/${name}p2"
check "sysfs loop/partscan is 1" sysfs_is 0 loop/partscan 1
check "p1 starts at sector 2048" sysfs_is 0 "${name}p1/start" 2048
check "p1 has 4096 sectors" sysfs_is 0 "${name}p1/size" 4096
check "p2 starts at sector 6144" sysfs_is 0 "${name}p2/start" 6144
check "p2 has 8192 sectors" sysfs_is 0 "${name}p2/size" 8192
check "p2's content is the file's" same_bytes "${dev}p2" 0 "$pimg" $((6144 * 512)) $((8192 * 512))
require "losetup -d" detach_loop 0
check "partitions are gone after -d" wait_until 5 test ! -e "${dev}p1" -a ! -e "${dev}p2"

# --- capacity -------------------------------------------------------------
cimg=$WORK/grow.img
truncate -s $((4 * MiB)) "$cimg"
require "attach a 4 MiB file" losetup "$dev" "$cimg"
truncate -s $((8 * MiB)) "$cimg"
check "size unchanged before -c" size_is "$dev" $((4 * MiB))
require "losetup -c" losetup -c "$dev"
check "size follows the file after -c" size_is "$dev" $((8 * MiB))
check "sysfs size follows" sysfs_is 0 size $((8 * MiB / 512))
require "losetup -d" detach_loop 0

# --- ext4 through the device ----------------------------------------------
fimg=$WORK/fs.img
mnt=$WORK/mnt
mkdir "$mnt"
truncate -s $((48 * MiB)) "$fimg"
head -c $((4 * MiB)) /dev/urandom >"$WORK/data"
require "attach the file system image" losetup "$dev" "$fimg"
require "mkfs.ext4" mkfs.ext4 -q "$dev"
require "mount" mount -t ext4 "$dev" "$mnt"
check "write a file" cp "$WORK/data" "$mnt/data"
require "umount" umount "$mnt"
require "mount again" mount -t ext4 "$dev" "$mnt"
check "the file reads back the same" cmp "$WORK/data" "$mnt/data"
require "umount" umount "$mnt"
require "losetup -d" detach_loop 0
check "e2fsck finds the image clean" e2fsck -fn "$fimg"
