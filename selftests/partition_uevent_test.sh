#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Partition uevents: every way of binding or re-configuring a device that
# scans its partitions sends exactly one kernel `add` uevent per partition it
# creates (loop.c since "loop: LOOP_CONFIGURE: send uevents for partitions"):
# LOOP_CONFIGURE with LO_FLAGS_PARTSCAN (losetup -P), LOOP_SET_STATUS64 that
# sets PARTSCAN, and, with max_part, LOOP_SET_FD and LOOP_CONFIGURE without
# the flag. Watched with `udevadm monitor -k -s block/partition`; a rescan
# udev itself triggers afterwards (remove, then add again) is not counted.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test partition_uevent_test

MiB=$((1024 * 1024))
dev=$(loop_dev 0)
name=${LOOP_PREFIX}0
img=$WORK/parts.img
events=$WORK/events
status_tool=$BIN_DIR/loop_status
monitor_pid=

truncate -s $((8 * MiB)) "$img"
printf 'label: dos\nstart=2048, size=4096, type=83\nstart=6144, size=8192, type=83\n' |
	sfdisk -q "$img"

# start_monitor: kernel uevents of partitions into $events, from now on
# (not in a subshell: it keeps the monitor's pid).
start_monitor() {
	: >"$events"
	stdbuf -oL udevadm monitor -k -s block/partition >"$events" 2>&1 &
	monitor_pid=$!
	# The header is printed once the netlink socket listens.
	require "udevadm monitor listens" wait_until 10 grep -q "^KERNEL - " "$events"
}
stop_monitor() {
	[[ -n $monitor_pid ]] || return 0
	kill "$monitor_pid" 2>/dev/null || true
	wait "$monitor_pid" 2>/dev/null || true
	monitor_pid=
}
at_exit stop_monitor

# adds PART: the `add` events for partition PART (rloop0p1, ...) before the
# first `remove`. A remove and add of every partition that may follow is
# udev's own rescan: its inotify watch (Debian's 60-block.rules watch loop*)
# rereads the table (BLKRRPART) after the writer that bound the device closes.
adds() {
	awk -v p="/$1 (block)" '/\] remove /{ exit }
		index($0, "] add ") && index($0, p) { n++ } END { print n + 0 }' "$events"
}
both_seen() { (($(adds "${name}p1") >= 1 && $(adds "${name}p2") >= 1)); }
# one_add_each WHAT: after WHAT, exactly one add for p1 and one for p2. Waits
# up to 5 s for them, then 1 s more for a duplicate.
one_add_each() {
	wait_until 5 both_seen || true
	sleep 1
	stop_monitor
	equals "$(adds "${name}p1")" 1 "add events for ${name}p1 after $1" &&
		equals "$(adds "${name}p2")" 1 "add events for ${name}p2 after $1" ||
		{ sed 's/^/seen: /' "$events" >&2; return 1; }
}
partitions_present() { test -b "${dev}p1" -a -b "${dev}p2"; }
partitions_gone() { wait_until 5 test ! -e "${dev}p1" -a ! -e "${dev}p2"; }

# --- LOOP_CONFIGURE with PARTSCAN (losetup -P) ----------------------------
start_monitor
require "losetup -P (LOOP_CONFIGURE)" losetup -P "$dev" "$img"
check "p1 and p2 exist" partitions_present
check "one add uevent per partition after LOOP_CONFIGURE" one_add_each "LOOP_CONFIGURE"
require "losetup -d" detach_loop 0
check "partitions are gone after -d" partitions_gone

# --- LOOP_SET_STATUS64 setting PARTSCAN -----------------------------------
require "losetup without -P" losetup "$dev" "$img"
check "no partitions without PARTSCAN" test ! -e "${dev}p1"
start_monitor
require "LOOP_SET_STATUS64 with PARTSCAN" "$status_tool" "$dev" partscan
check "p1 and p2 exist" partitions_present
check "one add uevent per partition after SET_STATUS64" one_add_each "LOOP_SET_STATUS64"
require "losetup -d" detach_loop 0
check "partitions are gone after -d" partitions_gone

# --- max_part: LOOP_SET_FD and LOOP_CONFIGURE scan without the flag -------
require "unload $(driver_module_name)" cleanup_driver
require "load $(driver_module_name) max_part=8" load_driver max_part=8
start_monitor
require "LOOP_SET_FD with max_part" "$status_tool" --set-fd "$dev" "$img"
check "p1 and p2 exist" partitions_present
check "one add uevent per partition after LOOP_SET_FD" one_add_each "LOOP_SET_FD"
require "losetup -d" detach_loop 0
check "partitions are gone after -d" partitions_gone

start_monitor
require "losetup without -P, max_part (LOOP_CONFIGURE)" losetup "$dev" "$img"
check "p1 and p2 exist" partitions_present
check "one add uevent per partition after LOOP_CONFIGURE with max_part" \
	one_add_each "LOOP_CONFIGURE with max_part"
require "losetup -d" detach_loop 0
check "partitions are gone after -d" partitions_gone
