#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A file system on the device, whose backing file lives on a file system of
# the same kind on the VM's virtio-blk scratch disk: ext4 (1 KiB blocks) on
# ext4 mounted strictatime, with the device in buffered and in direct-I/O
# mode. (xfs on xfs works the same way but doubles the run time under TCG;
# the loop below takes it as one more file system name.) A metadata-heavy workload runs in phases with cold
# caches between them (every directory and inode block is read from the
# device again), then the upper file system is unmounted and checked.
#
# The upper file system submits reads while it holds a journal handle
# (current->journal_info) and its locks; a driver that runs the lower file
# system in that context makes the lower one join the upper's transaction
# (jbd2 WARNING/BUG), nests their mapping locks (lockdep) or waits forever
# for a lower bio parked on the submitter's bio_list. Pass: every phase ends
# in time, the data reads back intact, fsck is clean and the kernel log has
# no bad line (tap_finish checks it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test real_storage_stacked_test

PHASE_TIME_LIMIT=180
dev=$(loop_dev 0)
lower=$WORK/lower
upper=$WORK/upper
mkdir -p "$lower" "$upper"

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)

# populate DIR TAG: 4 directories of 8 small files (1-9 KiB of random data).
# Few: every process start costs a lot under TCG with KASAN.
populate() {
	local d f
	for d in $(seq 4); do
		mkdir -p "$1/$2-$d"
		for f in $(seq 8); do
			head -c $(((RANDOM % 9 + 1) * 1024)) /dev/urandom >"$1/$2-$d/f$f"
		done
	done
}

# churn DIR: rename, delete and rewrite, with the directories cold.
churn() {
	local d
	for d in "$1"/a-*; do
		mv "$d/f1" "$d/renamed"
		rm "$d/f2" "$d/f3"
		ln "$d/f4" "$d/hardlink"
		touch "$d"/f*
	done
	populate "$1" b
}

# manifest DIR: checksums of every file, by path relative to DIR.
manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
# kept MANIFEST: the lines of the files churn leaves alone (f5 to f8 of a-*).
kept() { grep -E '\./a-[0-9]+/f[5-8]$' "$1"; }

phase() {
	local what=$1
	shift
	check "$what" bounded "$PHASE_TIME_LIMIT" "$@"
}

for fs in ext4; do
	case $fs in
	ext4) upper_mkfs=(-b 1024) img_size=96M ;;
	# mkfs.xfs wants at least 300 MiB.
	xfs) upper_mkfs=() img_size=320M ;;
	esac
	require "mkfs.$fs on the scratch disk" mkfs_quiet "$fs" "$disk"
	require "mount $fs (strictatime) on the scratch disk" mount -o strictatime "$disk" "$lower"
	for dio in off on; do
		what="$fs on rloop on $fs, --direct-io=$dio"
		img=$lower/upper-$dio.img
		require "create the backing file ($what)" truncate -s "$img_size" "$img"
		require "attach ($what)" losetup --direct-io=$dio "$dev" "$img"
		require "mkfs ($what)" mkfs_quiet "$fs" "$dev" "${upper_mkfs[@]}"
		require "mount ($what)" mount -o strictatime "$dev" "$upper"
		phase "create files ($what)" populate "$upper" a
		drop_caches
		phase "checksum them cold ($what)" eval 'manifest "$upper" >"$WORK/before"'
		drop_caches
		phase "rename, delete, link and create cold ($what)" churn "$upper"
		phase "checksum after churn ($what)" eval 'manifest "$upper" >"$WORK/after"'
		drop_caches
		check "every file reads back the same cold ($what)" \
			bounded "$PHASE_TIME_LIMIT" eval 'manifest "$upper" | cmp - "$WORK/after"'
		check "churn left 16 files alone ($what)" equals "$(kept "$WORK/before" | wc -l)" 16
		check "untouched files kept their data ($what)" \
			cmp <(kept "$WORK/before") <(kept "$WORK/after")
		require "unmount ($what)" bounded "$PHASE_TIME_LIMIT" umount "$upper"
		case $fs in
		ext4) check "e2fsck -fn clean ($what)" e2fsck -fn "$dev" ;;
		xfs) check "xfs_repair -n clean ($what)" xfs_repair -n "$dev" ;;
		esac
		require "detach ($what)" detach_loop 0
		rm -f "$img"
	done
	require "unmount the scratch disk ($fs)" umount "$lower"
done
