#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# cgroup charging: the I/O a loop device performs on its backing file on
# behalf of a request is charged to the blkcg of the task that issued the
# request, as loop.c does (a worker per blkcg, kthread_associate_blkcg). So a
# cgroup v2 io.max limit on the *disk under the backing file* applies to a
# process in that cgroup that reads through the loop device.
#
# On ext4 on the VM's virtio-blk scratch disk (vm/run.sh --disk), with the
# backing file written in full (no holes: every read reaches the disk), and
# for the device in direct-I/O mode and in buffered mode (cold cache):
#   - a sequential read through the device from the root cgroup must be well
#     above the limit (else the test proves nothing: the disk is too slow);
#   - the same read from a cgroup whose io.max caps the virtio disk's read
#     bandwidth must honour the cap (at most CAP_SLACK times it).
# A control reads the backing file itself from the cgroup, to show that the
# throttle works at all in this kernel. Sequential reads of a file larger
# than what the capped run can read never hit the page cache twice, so in
# buffered mode what fio gets is at most what the disk delivered.
#
# loop.c passes. A driver that runs its backing I/O in workers charged to the
# root cgroup escapes the limit and fails the capped checks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test cgroup_charge_test

MiB=$((1024 * 1024))
LIMIT_BPS=$((1 * MiB))     # io.max rbps on the virtio disk
CAP_SLACK_PCT=150          # capped runs: at most 1.5x the limit
ROOT_MIN_PCT=400           # root-cgroup runs: at least 4x the limit
FIO_RUNTIME=5              # measured seconds (after a 1 s ramp)
FIO_TIME_LIMIT=90          # a run that takes longer is stuck
FILE_MIB=96                # > what a capped run can read in ramp + runtime
dev=$(loop_dev 0)
lower=$WORK/lower
mkdir -p "$lower"

require "the VM has a scratch virtio disk" scratch_disk
disk=$(scratch_disk)
disk_majmin=$(<"/sys/block/${disk#/dev/}/dev")

# --- cgroup v2 with the io controller ---------------------------------------
# The unified hierarchy at /sys/fs/cgroup, mounted here if nobody did; a
# private mount if /sys/fs/cgroup holds something else (cgroup v1).
cgroot=/sys/fs/cgroup
if [[ $(stat -fc %T "$cgroot" 2>/dev/null) != cgroup2fs ]]; then
	if mountpoint -q "$cgroot"; then
		cgroot=$WORK/cgroup2
		mkdir -p "$cgroot"
	fi
	require "mount cgroup2 at $cgroot" mount -t cgroup2 none "$cgroot"
	at_exit umount "$cgroot"
fi
require "the io controller is available in cgroup v2" grep -qw io "$cgroot/cgroup.controllers"
if ! grep -qw io "$cgroot/cgroup.subtree_control"; then
	require "enable +io in the root's subtree_control" \
		sh -c 'echo +io >"$1/cgroup.subtree_control"' sh "$cgroot"
	at_exit sh -c 'echo -io >"$1/cgroup.subtree_control" 2>/dev/null || true' sh "$cgroot"
fi
cg=$cgroot/rloop-cgroup-charge.$$
require "create cgroup $cg" mkdir "$cg"
at_exit rmdir "$cg"
# in_cgroup CGROUP COMMAND...: run COMMAND as a member of CGROUP (this
# subshell joins it, then becomes COMMAND; fio's job processes inherit it).
in_cgroup() {
	echo "$BASHPID" >"$1/cgroup.procs"
	shift
	exec "$@"
}

# One read of the disk from the cgroup first, so that its blkg on the disk
# exists (made on the I/O path, GFP_NOWAIT) before io.max is written: else
# blkg_conf_prep() makes it with radix_tree_preload(GFP_KERNEL) under
# q->blkcg_mutex, which lockdep reports as a possible circular dependency
# with fs_reclaim and q_usage_counter (seen on a second io.max write on the
# same disk in one boot: a block-core report, not the loop driver's).
require "a first read of $disk from the cgroup" \
	in_cgroup "$cg" dd if="$disk" of=/dev/null bs=4k count=1 iflag=direct status=none
require "io.max on the virtio disk ($disk_majmin): rbps=$LIMIT_BPS" \
	sh -c 'echo "$2 rbps=$3" >"$1/io.max"' sh "$cg" "$disk_majmin" "$LIMIT_BPS"
check "io.max reads back" grep -q "^$disk_majmin rbps=$LIMIT_BPS " "$cg/io.max"

# read_bps WHERE TARGET DIRECT: one bounded sequential 64 KiB read of TARGET
# (QD1, fio --direct=DIRECT) from cgroup WHERE ("root" or a path), with cold
# caches. Leaves fio's read bandwidth in bytes per second in $WORK/bps.
read_bps() {
	local where=$1 target=$2 direct=$3 status=0 kib
	local fio_cmd=(fio --name=cgread --filename="$target" --rw=read --bs=64k
		--ioengine=psync --iodepth=1 --direct="$direct" --time_based
		--ramp_time=1 --runtime="$FIO_RUNTIME" --output-format=terse)
	echo 0 >"$WORK/bps"
	drop_caches
	if [[ $where == root ]]; then
		bounded "$FIO_TIME_LIMIT" "${fio_cmd[@]}" >"$WORK/fio.out" 2>&1 || status=$?
	else
		bounded "$FIO_TIME_LIMIT" in_cgroup "$where" "${fio_cmd[@]}" >"$WORK/fio.out" 2>&1 || status=$?
	fi
	# Terse v3: field 7 is the read bandwidth in KiB/s.
	kib=$(awk -F';' '/^3;/ { print $7 }' "$WORK/fio.out")
	if ((status != 0)) || [[ -z $kib ]]; then
		echo "fio failed (status $status)"
		cat "$WORK/fio.out"
		return "$((status ? status : 1))"
	fi
	echo $((kib * 1024)) >"$WORK/bps"
}
last_bps() { cat "$WORK/bps"; }

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB/s", b / 1048576 }'; }
# at_most BPS PCT: BPS <= PCT% of the limit; at_least BPS PCT: >= PCT%.
at_most() { (($1 * 100 <= LIMIT_BPS * $2)) || { echo "$(mib "$1") > $2% of $(mib "$LIMIT_BPS")" >&2; return 1; }; }
at_least() { (($1 * 100 >= LIMIT_BPS * $2)) || { echo "$(mib "$1") < $2% of $(mib "$LIMIT_BPS")" >&2; return 1; }; }

# measure NAME WHERE TARGET DIRECT: one run, its figure as a TAP line. A
# stuck run leaves the device unusable: the test stops there.
measure() {
	local name=$1 status=0
	shift
	read_bps "$@" >"$WORK/measure.out" 2>&1 || status=$?
	if ((status == 0)); then
		tap_ok "$name: read $(mib "$(last_bps)")"
		return 0
	fi
	tap_not_ok "$name: fio failed (status $status)"
	tap_diag <"$WORK/measure.out"
	((status != 124)) || exit 1
}

# Teardown, whatever state the test stopped in: the device off the backing
# file, then the file system off the disk.
release_lower() {
	if losetup "$dev" >/dev/null 2>&1; then
		bounded 20 losetup -d "$dev" || true
		wait_loop_unbound 0 || true
	fi
	! mountpoint -q "$lower" || bounded 20 umount "$lower"
}

require "mkfs.ext4 on the scratch disk" mkfs_quiet ext4 "$disk"
require "mount ext4" mount "$disk" "$lower"
at_exit release_lower
img=$lower/disk.img
require "write a $FILE_MIB MiB backing file on ext4" \
	dd if=/dev/urandom of="$img" bs=$MiB count=$FILE_MIB conv=fsync status=none

echo "# limit: io.max $disk_majmin rbps=$LIMIT_BPS ($(mib "$LIMIT_BPS")) on $disk"

# The control: the throttle itself works on the backing file.
measure "control: direct read of the backing file in the cgroup" "$cg" "$img" 1
check "control: the cgroup's direct file read honours the limit" at_most "$(last_bps)" "$CAP_SLACK_PCT"

for dio in on off; do
	what="$LOOP_PREFIX, --direct-io=$dio"
	require "attach ($what)" losetup --direct-io=$dio "$dev" "$img"
	check "sysfs loop/dio ($what)" sysfs_is 0 loop/dio "$([[ $dio == on ]] && echo 1 || echo 0)"
	measure "$what: root cgroup" root "$dev" 1
	check "$what: root cgroup well above the limit (>= ${ROOT_MIN_PCT}%)" \
		at_least "$(last_bps)" "$ROOT_MIN_PCT"
	measure "$what: capped cgroup" "$cg" "$dev" 1
	check "$what: capped cgroup honours io.max (<= ${CAP_SLACK_PCT}% of the limit)" \
		at_most "$(last_bps)" "$CAP_SLACK_PCT"
	require "detach ($what)" detach_loop 0
done
