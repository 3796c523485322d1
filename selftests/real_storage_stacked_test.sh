#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A file system on the device, whose backing file lives on a file system of
# the same kind on the VM's virtio-blk scratch disk mounted strictatime: ext4
# with 1 KiB and with 4 KiB blocks on ext4, xfs on xfs; each with the device
# in buffered and in direct-I/O mode. A metadata-heavy workload runs in
# phases with cold caches between them (every directory and inode block is
# read from the device again), then the free space is filled, the backing
# file enlarged, LOOP_SET_CAPACITY (losetup -c) issued and the mounted file
# system grown (resize2fs / xfs_growfs, with its metadata cold); data written
# into the new space, everything read back cold, unmount, fsck (stacked_lib.sh).
#
# The upper file system submits reads while it holds a journal handle
# (current->journal_info) and its locks — online resize does it reading its
# group descriptors; a driver that runs the lower file system in that context
# makes the lower one join the upper's transaction (jbd2 WARNING/BUG), nests
# their mapping locks (lockdep) or waits forever for a lower bio parked on
# the submitter's bio_list. Pass: every step ends in time, the device and
# df see the new size, the data reads back intact, fsck is clean and the
# kernel log has no bad line (tap_finish checks it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test real_storage_stacked_test
source "$(dirname "$0")/stacked_lib.sh"

dev=$(loop_dev 0)
lower=$WORK/lower
mkdir -p "$lower"
at_exit release_scratch_mount "$lower"

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)
stacked_init

# grow_backing: the grow callback of stacked_round.
grow_backing() { truncate -s "$grown_size" "$img" && losetup -c "$dev"; }

# LOWER-FS UPPER-FS UPPER-MKFS-OPTIONS SIZE-MiB GROWN-MiB. Small: every
# round costs about 20 s of process starts under TCG with KASAN, and
# mkfs.xfs wants at least 300 MiB.
variants=(
	"ext4 ext4 -b1024 96 128"
	"ext4 ext4 -b4096 96 128"
	"xfs xfs - 320 384"
)
mounted=
for variant in "${variants[@]}"; do
	read -r lower_fs fs upper_mkfs size grown <<<"$variant"
	if [[ $mounted != "$lower_fs" ]]; then
		if [[ -n $mounted ]]; then
			require "unmount the scratch disk ($mounted)" umount "$lower"
		fi
		require "mkfs.$lower_fs on the scratch disk" bounded 120 mkfs_quiet "$lower_fs" "$disk"
		require "mount $lower_fs (strictatime) on the scratch disk" \
			bounded 60 mount -o strictatime "$disk" "$lower"
		mounted=$lower_fs
	fi
	mkfs_options=()
	[[ $upper_mkfs == - ]] || mkfs_options=("$upper_mkfs")
	grown_size=$((grown * MiB))
	for dio in off on; do
		what="$fs ${mkfs_options[*]} on ${LOOP_PREFIX} on $lower_fs, --direct-io=$dio"
		what=${what/  / }
		img=$lower/upper-$dio.img
		require "create the backing file ($what)" truncate -s "${size}M" "$img"
		require "attach ($what)" bounded 60 losetup --direct-io=$dio "$dev" "$img"
		stacked_round "$what" "$dev" "$fs" "$grown_size" grow_backing "${mkfs_options[@]}"
		require "detach ($what)" bounded 60 detach_loop 0
		rm -f "$img"
	done
done
require "unmount the scratch disk ($mounted)" umount "$lower"
