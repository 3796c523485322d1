#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Module lifecycle: rmmod is refused while a device or the control node is
# open; rmmod with a device bound but not open differs on purpose (rust_loop
# allows it and detaches, releasing the backing file; loop.c holds a module
# reference per binding and refuses); then 20 load/unload cycles with I/O on
# attached devices in between.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start_driver_test lifecycle_test

module=$(driver_module_name)
dev0=$(loop_dev 0)
dev1=$(loop_dev 1)
img0=$WORK/disk0.img
img1=$WORK/disk1.img
head -c $((4 * 1024 * 1024)) /dev/urandom >"$img0"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$img1"

umount_if_mounted() { ! mountpoint -q "$1" || umount -l "$1"; }
# If rmmod wrongly succeeded, reload so the remaining checks can run.
reload_if_gone() { driver_loaded || load_driver; }

# rmmod_while_open NODE: hold NODE open and try to unload.
rmmod_while_open() {
	local status=0
	exec 3<"$1"
	unload_driver || status=$?
	exec 3<&-
	((status != 0)) || { echo "rmmod $module succeeded while $1 was open" >&2; return 1; }
}

check "rmmod refused while $(loop_ctl) is open" rmmod_while_open "$(loop_ctl)"
require "$module still loaded" reload_if_gone
check "rmmod refused while $dev0 (unbound) is open" rmmod_while_open "$dev0"
require "$module still loaded" reload_if_gone
require "attach $dev0" losetup "$dev0" "$img0"
check "rmmod refused while $dev0 (bound) is open" rmmod_while_open "$dev0"
require "$module still loaded" reload_if_gone
require "detach $dev0" detach_loop 0

# Bound, nothing open. The backing file sits on its own tmpfs: unmounting it
# proves the driver let go of the file.
fs=$WORK/fs
mkdir "$fs"
mount -t tmpfs -o size=16m tmpfs "$fs"
at_exit umount_if_mounted "$fs"
cp "$img0" "$fs/disk.img"
require "attach $dev0 to a file on a separate tmpfs" losetup "$dev0" "$fs/disk.img"
if [[ $LOOP_PREFIX == rloop ]]; then
	# udev may still have the device open for a moment after the attach.
	check "rmmod succeeds with $dev0 bound but not open" wait_until 10 unload_driver
	check "the backing file was released (its tmpfs unmounts)" umount "$fs"
	require "load $module again" reload_if_gone
	check "$dev0 comes back unbound" loop_unbound 0
else
	check "loop.c: rmmod refused while $dev0 is bound (module ref per binding)" fails unload_driver
	require "detach $dev0" detach_loop 0
	check "rmmod succeeds once nothing is bound" wait_until 10 unload_driver
	check "the backing file was released (its tmpfs unmounts)" umount "$fs"
fi
require "unload $module before the cycles" cleanup_driver

# cycle N: load, bind two devices and check that a write through each reaches
# its file (tools/loop_io.c), detach, unload; rust_loop is unloaded with both
# still bound on odd N. No udevadm settle: it costs more than the rest of a
# cycle under TCG; rmmod is retried instead while udev holds a device.
cycle() {
	local keep=()
	if [[ $LOOP_PREFIX == rloop ]] && (($1 % 2)); then keep=(-k); fi
	insmod "$(driver_module_path)" && note_module_text && wait_until 5 test -b "$dev1" &&
		"$BIN_DIR/loop_io" "${keep[@]}" "$dev0" "$img0" "$dev1" "$img1" || return 1
	if ((${#keep[@]} == 0)); then
		wait_loop_unbound 0 && wait_loop_unbound 1 || return 1
	fi
	wait_until 10 rmmod "$module"
}
for i in $(seq 20); do
	how="detach, unload"
	if [[ $LOOP_PREFIX == rloop ]] && ((i % 2)); then how="unload while bound"; fi
	check "cycle $i: load, attach 2 devices, I/O, $how" cycle "$i"
	# A failed cycle leaves a mess: start the next one clean.
	driver_unloaded || cleanup_driver || true
done
