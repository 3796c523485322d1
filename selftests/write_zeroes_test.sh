#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The write-zeroes fallback: a backing file whose file system cannot zero a
# range (tmpfs has no FALLOC_FL_ZERO_RANGE) fails the first write-zeroes
# with "operation not supported", and the device then stops advertising
# write-zeroes (queue/write_zeroes_max_bytes 0), so the block layer writes
# zero pages instead: `mkfs.ext2` leaves exactly one error line in the
# kernel log, as on loop.c. The next bind advertises it again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test write_zeroes_test

MiB=$((1024 * 1024))
dev=$(loop_dev 0)
name=${LOOP_PREFIX}0
img=$WORK/fs.img
wz_max=write_zeroes_max_bytes

# Lines of the block layer's request errors for the device since MARK.
request_errors() { klog_since "$1" | grep " error, dev $name, " || true; }
# one_write_zeroes_error MARK: exactly one error line for the device since
# MARK, and it is a write-zeroes one.
one_write_zeroes_error() {
	local lines
	lines=$(request_errors "$1")
	equals "$(grep -c . <<<"$lines" || true)" 1 "request error lines for $name" &&
		[[ $lines == *"operation not supported error"*"(WRITE_ZEROES)"* ]] ||
		{ printf 'logged: %s\n' "$lines" >&2; return 1; }
}
nonzero() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || { echo "'$1' is not > 0" >&2; return 1; }; }

require "the backing file is on tmpfs" equals "$(stat -f -c %T "$WORK")" tmpfs
truncate -s $((64 * MiB)) "$img"
require "attach" losetup "$dev" "$img"
advertised=$(<"$(loop_sys 0)/queue/$wz_max")
check "write-zeroes is advertised at bind" nonzero "$advertised"

klog_mark "write_zeroes_test mkfs.ext2"
require "mkfs.ext2" mkfs.ext2 -q -F "$dev"
check "exactly one write-zeroes error in the kernel log" \
	one_write_zeroes_error "write_zeroes_test mkfs.ext2"
check "queue/$wz_max is 0 afterwards" sysfs_is 0 "queue/$wz_max" 0
check "e2fsck finds the new file system clean" e2fsck -fn "$dev"

# Zeroing still works, by the block layer's fallback: no further error.
klog_mark "write_zeroes_test blkdiscard -z"
head -c $MiB /dev/urandom | dd of="$dev" bs=1M seek=1 conv=fsync status=none
require "blkdiscard -z of 1 MiB" blkdiscard -z -o $MiB -l $MiB "$dev"
check "the zeroed range reads as zeroes" cmp -n $MiB -i $MiB:0 "$dev" /dev/zero
check "no request error after write-zeroes was withdrawn" \
	equals "$(request_errors "write_zeroes_test blkdiscard -z")" ""

require "losetup -d" detach_loop 0
require "attach again" losetup "$dev" "$img"
check "queue/$wz_max is back after the next bind" sysfs_is 0 "queue/$wz_max" "$advertised"
require "losetup -d" detach_loop 0
