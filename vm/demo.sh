#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job (`make run`), run inside the VM: load rust_loop, then with the
# stock losetup attach an image to /dev/rloop0, partition it, format it, mount
# it, write and read back a file, show `losetup -l`, and detach. Then the same
# module in drop-in mode (drop_in=1, loop.c's names): a `mount -o loop` round
# trip with the stock tools.
set -euo pipefail
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "load rust_loop"
run insmod "$REPO_DIR/rust_loop.ko"
run ls -l /dev/rloop-control /dev/rloop0 /dev/rloop1
image=$SCRATCH/disk.img
mnt=$SCRATCH/mnt
mkdir -p "$mnt"

step "make a 64 MiB image with two partitions"
run truncate -s 64M "$image"
printf 'label: dos\n,32M,L\n,,L\n' | run sfdisk -q "$image"

step "attach it with partition scanning"
run losetup -P /dev/rloop0 "$image"
run losetup -l /dev/rloop0
run ls -l /dev/rloop0p1 /dev/rloop0p2
run grep . /sys/block/rloop0/loop/backing_file /sys/block/rloop0/loop/partscan

step "format, mount, write, read back"
run mkfs.ext4 -q -b 1024 /dev/rloop0p1
run mount /dev/rloop0p1 "$mnt"
head -c 4M /dev/urandom >"$SCRATCH/payload"
run cp "$SCRATCH/payload" "$mnt/payload"
run umount "$mnt"
run mount -o ro /dev/rloop0p1 "$mnt"
run cmp "$SCRATCH/payload" "$mnt/payload"
echo "read back $(stat -c %s "$mnt/payload") bytes, identical"
run df -h "$mnt"
run umount "$mnt"

step "detach and unload"
run losetup -d /dev/rloop0
run cat /sys/block/rloop0/size
run rmmod rust_loop

# Drop-in mode: loop.c's names, so the stock tools that hard-code them
# (mount -o loop, losetup -f/-a) use rust_loop.
step "drop-in mode: load rust_loop drop_in=1 (loop.c's names)"
run insmod "$REPO_DIR/rust_loop.ko" drop_in=1
udevadm settle
run ls -l /dev/loop-control /dev/loop0
run grep -w loop /proc/devices
fsimage=$SCRATCH/fs.img
run truncate -s 64M "$fsimage"
run mkfs.ext4 -q "$fsimage"

step "drop-in mode: mount -o loop, write, read back, umount"
run mount -o loop "$fsimage" "$mnt"
run losetup -a
run cp "$SCRATCH/payload" "$mnt/payload"
run umount "$mnt"
run mount -o loop,ro "$fsimage" "$mnt"
run cmp "$SCRATCH/payload" "$mnt/payload"
echo "read back $(stat -c %s "$mnt/payload") bytes through $(findmnt -n -o SOURCE "$mnt"), identical"
run umount "$mnt"
# The release is the last close: udev's probe after the umount may hold the
# node a moment longer.
for _ in $(seq 50); do [[ -z $(losetup -a) ]] && break; sleep 0.1; done
printf '$ losetup -a   # empty: umount released the device (autoclear)\n'
listed=$(losetup -a)
[[ -z $listed ]] || { echo "$listed"; echo "a device is still attached" >&2; exit 1; }
run rmmod rust_loop
echo
echo "demo finished: OK"
