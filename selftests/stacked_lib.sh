# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# The workload of the real_storage_stacked*_test.sh scripts: a file system on
# a device under test whose backing I/O ends on the VM's virtio scratch disk.
# Sourced after lib.sh, once the test has called tap_start_driver_test.
#
# stacked_round runs it on one device: mkfs, mount, create files, checksum
# them cold, rename/delete/link/create cold, fill the free space, enlarge the
# device (a callback does it: the backing file, then LOOP_SET_CAPACITY) and
# grow the mounted file system (resize2fs / xfs_growfs) with its metadata
# cold, write into the new space, read everything back cold, unmount, fsck.
# Every step is bounded in time: a stall fails it and shows the stuck stacks.
#
# Under TCG with KASAN every process start costs more than the I/O, so the
# files are written by bash itself, from one pool of random text.

MiB=$((1024 * 1024))
STACKED_TIME_LIMIT=${STACKED_TIME_LIMIT:-180}
# The data written into the space a grow adds: more than was left before it.
STACKED_GROWN_MIB=16
upper=$WORK/upper
mkdir -p "$upper"

# cold: drop_caches, bounded (sync waits for every write in flight).
cold() { bounded "$STACKED_TIME_LIMIT" drop_caches; }

# stacked_init: the random text the files are cut from, and the data file the
# grow step writes.
stacked_init() {
	{ head -c 24K /dev/urandom | base64 -w0; echo; } >"$WORK/pool"
	IFS= read -r STACKED_POOL <"$WORK/pool"
	head -c $((STACKED_GROWN_MIB * MiB)) /dev/urandom >"$WORK/grown"
}

# populate DIR TAG: 4 directories of 8 files of 1 to 9 KiB.
populate() {
	local d f len
	mkdir "$1/$2"-{1..4}
	for d in 1 2 3 4; do
		for f in 1 2 3 4 5 6 7 8; do
			len=$(((RANDOM % 9 + 1) * 1024))
			printf '%s' "${STACKED_POOL:RANDOM % (${#STACKED_POOL} - len):len}" >"$1/$2-$d/f$f"
		done
	done
}

# churn DIR: rename, delete, link and touch in the a-* directories, then
# create 4 more directories of files.
churn() {
	local d
	for d in "$1"/a-*; do
		mv "$d/f1" "$d/renamed"
		ln "$d/f4" "$d/hardlink"
	done
	rm "$1"/a-*/f[23]
	touch "$1"/a-*/f*
	populate "$1" b
}

# manifest DIR: checksums of the files in DIR's subdirectories.
manifest() { (cd "$1" && sha256sum -- */*); }
# kept MANIFEST: the lines of the files churn leaves alone (f5 to f8 of a-*).
kept() { grep -E ' a-[0-9]+/f[5-8]$' "$1"; }

# step WHAT COMMAND...: one bounded check.
step() {
	local what=$1
	shift
	check "$what" bounded "$STACKED_TIME_LIMIT" "$@"
}

# statfs_bytes FIELD: a statfs field of the upper file system, in bytes
# (%b total, %f free).
statfs_bytes() { echo $(($(stat -f -c "%$1" "$upper") * $(stat -f -c %S "$upper"))); }

# at_most VALUE LIMIT WHAT, at_least VALUE LIMIT WHAT
at_most() { ((${1} <= ${2})) || { echo "$3 is $1, want at most $2" >&2; return 1; }; }
at_least() { ((${1} >= ${2})) || { echo "$3 is $1, want at least $2" >&2; return 1; }; }

# fsck_clean FS DEVICE
fsck_clean() {
	case $1 in
	ext4) e2fsck -fn "$2" ;;
	xfs) xfs_repair -n "$2" ;;
	esac
}

# grow_fs FS: grow the mounted upper file system to its device's size.
grow_fs() {
	case $1 in
	ext4) resize2fs "$(awk -v m="$upper" '$2 == m { print $1 }' /proc/mounts)" ;;
	xfs) xfs_growfs -d "$upper" ;;
	esac
}

# stacked_round WHAT DEVICE FS GROWN-BYTES GROW-COMMAND [MKFS-OPTIONS...]:
# the whole workload on DEVICE (bound, empty). GROW-COMMAND (a command name,
# run bounded) enlarges DEVICE to GROWN-BYTES.
stacked_round() {
	local what=$1 dev=$2 fs=$3 grown_size=$4 grow=$5 total_before added
	shift 5
	require "mkfs.$fs $* ($what)" bounded "$STACKED_TIME_LIMIT" mkfs_quiet "$fs" "$dev" "$@"
	require "mount strictatime ($what)" bounded "$STACKED_TIME_LIMIT" \
		mount -o strictatime "$dev" "$upper"
	step "create files ($what)" populate "$upper" a
	cold
	step "checksum them cold ($what)" eval 'manifest "$upper" >"$WORK/before"'
	cold
	step "rename, delete, link and create cold ($what)" churn "$upper"
	step "checksum after churn ($what)" eval 'manifest "$upper" >"$WORK/after"'

	# Online grow: with the old space full, the data written after the grow
	# can only go to the space it added.
	total_before=$(statfs_bytes b)
	step "fill the free space with a preallocation ($what)" \
		fallocate -l $(($(statfs_bytes f) - 4 * MiB)) "$upper/filler"
	check "less than $((STACKED_GROWN_MIB / 2)) MiB free before the grow ($what)" \
		at_most "$(statfs_bytes f)" $((STACKED_GROWN_MIB / 2 * MiB)) "free space"
	cold
	require "enlarge the backing file, LOOP_SET_CAPACITY ($what)" \
		bounded "$STACKED_TIME_LIMIT" "$grow"
	check "the device has the new size ($what)" size_is "$dev" "$grown_size"
	require "grow the mounted $fs cold ($what)" bounded "$STACKED_TIME_LIMIT" grow_fs "$fs"
	added=$(($(statfs_bytes b) - total_before))
	check "df sees the grown file system ($what)" \
		at_least "$added" $((STACKED_GROWN_MIB * MiB)) "added space"
	step "write $STACKED_GROWN_MIB MiB into the new space ($what)" \
		dd if="$WORK/grown" of="$upper/grown" bs=1M conv=fsync status=none

	cold
	step "every file reads back the same cold ($what)" \
		eval 'manifest "$upper" | cmp - "$WORK/after" && cmp "$upper/grown" "$WORK/grown"'
	check "churn left 16 files alone ($what)" equals "$(kept "$WORK/before" | wc -l)" 16
	check "untouched files kept their data ($what)" \
		cmp <(kept "$WORK/before") <(kept "$WORK/after")
	require "unmount ($what)" bounded "$STACKED_TIME_LIMIT" umount "$upper"
	check "fsck clean ($what)" bounded "$STACKED_TIME_LIMIT" fsck_clean "$fs" "$dev"
}
