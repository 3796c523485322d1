#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Stock util-linux 2.38.1 on loop.c's names, the everyday ways in that
# hard-code /dev/loop-control and loopN: losetup -f --show, -fP --show (the
# partitions present when it returns), -a, -j, --nooverlap, -D, mount -o loop
# (+ autoclear on umount), mount -o loop,offset=, and 16 parallel losetup -f.
# Plus the names loop.c registers (sysfs, /proc/devices, the misc minor, the
# uevent's DEVNAME).
#
# Under LOOP_PREFIX=rloop (make check) it runs rust_loop in drop-in mode
# (LOOP_PREFIX=loop LOOP_DRIVER=rust_loop: insmod rust_loop.ko drop_in=1);
# under LOOP_PREFIX=loop (make check-loopc) against loop.c itself.
set -euo pipefail
if [[ ${LOOP_PREFIX:-rloop} == rloop ]]; then
	export LOOP_PREFIX=loop LOOP_DRIVER=rust_loop
fi
source "$(dirname "$0")/lib.sh"

tap_start_driver_test dropin_test

MiB=$((1024 * 1024))
img=$WORK/disk.img
mnt=$WORK/mnt
mkdir "$mnt"
truncate -s $((8 * MiB)) "$img"

# bound_devices: the /dev/loopN of every bound device, sorted.
bound_devices() {
	local f
	for f in /sys/block/loop[0-9]*/loop/backing_file; do
		[[ -e $f ]] || continue
		f=${f%/loop/backing_file}
		echo "/dev/${f##*/}"
	done | sort
}
none_bound() { [[ -z $(bound_devices) ]] || { echo "still bound: $(bound_devices)" >&2; return 1; }; }
is_bound_to() { equals "$(<"/sys/block/${1#/dev/}/loop/backing_file")" "$2" "backing file of $1"; }
# detach_all: losetup -D, then wait for the (lazy) teardown.
detach_all() { losetup -D && wait_until 10 none_bound; }

# --- loop.c's names -------------------------------------------------------
check "/dev/loop-control is misc 10:237" equals "$(stat -c '%t:%T' /dev/loop-control)" "a:ed"
check "/sys/class/misc/loop-control/dev is 10:237" equals "$(</sys/class/misc/loop-control/dev)" 10:237
check "/proc/devices lists block major 7 as loop" grep -qx ' *7 loop' /proc/devices
check "/sys/block/loop0/dev is 7:0" equals "$(</sys/block/loop0/dev)" 7:0
check "the uevent of loop0 names /dev/loop0" \
	grep -qx 'DEVNAME=loop0' /sys/block/loop0/uevent
check "udev knows /dev/loop0 as a disk" \
	bash -c 'udevadm info -q property /dev/loop0 | grep -qx DEVTYPE=disk'

# --- losetup -f --show ----------------------------------------------------
dev=$(losetup -f --show "$img") || dev=
require "losetup -f --show prints a /dev/loopN" test -b "$dev" -a "${dev#/dev/loop}" != "$dev"
check "it is bound to the file" is_bound_to "$dev" "$img"
check "losetup -j FILE lists it" bash -c "losetup -j '$img' | grep -q '^$dev:'"
img2=$WORK/other.img
truncate -s $((4 * MiB)) "$img2"
dev2=$(losetup -f --show "$img2") || dev2=
require "a second losetup -f --show gives another device" test -b "$dev2" -a "$dev2" != "$dev"
check "losetup -a lists both" bash -c "out=\$(losetup -a); [[ \$out == *'$dev: '*'$img'* && \$out == *'$dev2: '*'$img2'* ]] || { echo \"\$out\"; false; }"
check "losetup -j FILE lists only the device of FILE" equals "$(losetup -j "$img2" | cut -d: -f1)" "$dev2"
check "losetup --nooverlap on the same file gives the same device" \
	equals "$(losetup -f --nooverlap --show "$img")" "$dev"
check "losetup -D detaches every device" detach_all
check "losetup -a is empty after -D" equals "$(losetup -a)" ""

# --- losetup -fP --show on a 2-partition image ----------------------------
pimg=$WORK/parts.img
truncate -s $((8 * MiB)) "$pimg"
printf 'label: dos\nstart=2048, size=4096, type=83\nstart=6144, size=8192, type=83\n' |
	sfdisk -q "$pimg"
dev=$(losetup -fP --show "$pimg") || dev=
require "losetup -fP --show prints a device" test -b "$dev"
name=${dev#/dev/}
# No waiting: the scan must be complete when losetup returns.
check "p1 and p2 exist right after losetup -fP" \
	test -b "${dev}p1" -a -b "${dev}p2" -a -d "/sys/block/$name/${name}p1" -a -d "/sys/block/$name/${name}p2"
check "p2 starts at sector 6144" equals "$(<"/sys/block/$name/${name}p2/start")" 6144
check "losetup -D" detach_all

# --- mount -o loop --------------------------------------------------------
fimg=$WORK/fs.img
truncate -s $((32 * MiB)) "$fimg"
mkfs.ext4 -q -F "$fimg"
head -c $MiB /dev/urandom >"$WORK/data"
require "mount -o loop IMG DIR" mount -o loop "$fimg" "$mnt"
dev=$(findmnt -n -o SOURCE "$mnt")
check "the file system sits on a loop device" test -b "$dev" -a "${dev#/dev/loop}" != "$dev"
check "its autoclear flag is set" equals "$(<"/sys/block/${dev#/dev/}/loop/autoclear")" 1
check "write a file" cp "$WORK/data" "$mnt/data"
require "umount" umount "$mnt"
check "umount released the device (autoclear)" wait_until 10 none_bound
check "the file is in the image" bash -c "debugfs -R 'dump /data $WORK/back' '$fimg' 2>/dev/null && cmp '$WORK/data' '$WORK/back'"

# --- mount -o loop,offset= ------------------------------------------------
oimg=$WORK/offset.img
{ head -c $MiB /dev/zero; cat "$fimg"; } >"$oimg"
require "mount -o loop,offset=1048576" mount -o loop,offset=$MiB "$oimg" "$mnt"
dev=$(findmnt -n -o SOURCE "$mnt")
check "its offset is 1 MiB" equals "$(<"/sys/block/${dev#/dev/}/loop/offset")" $MiB
check "the file reads back" cmp "$WORK/data" "$mnt/data"
require "umount" umount "$mnt"
check "umount released the device" wait_until 10 none_bound

# --- 16 parallel losetup -f -----------------------------------------------
pids=()
for i in $(seq 16); do
	truncate -s $MiB "$WORK/p$i.img"
	losetup -f --show "$WORK/p$i.img" >"$WORK/p$i.out" 2>&1 &
	pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
check "16 parallel losetup -f: none failed" equals "$failed" 0
check "16 parallel losetup -f: 16 distinct devices" \
	equals "$(cat "$WORK"/p*.out | sort -u | grep -c '^/dev/loop')" 16
check "each device is bound to its own file" bash -c '
	for i in $(seq 16); do
		d=$(<"'"$WORK"'/p$i.out"); f=$(<"/sys/block/${d#/dev/}/loop/backing_file")
		[[ $f == "'"$WORK"'/p$i.img" ]] || { echo "$d: $f"; exit 1; }
	done'
check "losetup -D after the parallel attach" detach_all

# --- modprobe.d/rust_loop.conf: the kernel loads rust_loop drop_in=1 -------
# where it would load loop.ko (rust_loop only: the VM's modprobe.blacklist=loop
# keeps loop.ko from autoloading). A module tree on tmpfs with rust_loop.ko
# alone is bound over /lib/modules/$(uname -r) for the test, the file goes to
# /run/modprobe.d (kmod reads it there as from /etc/modprobe.d).
drop_in_mode || exit 0
kver=$(uname -r)
modtree=$WORK/modules
conf=/run/modprobe.d/rust_loop.conf
restore_modprobe() {
	rm -f "$conf"
	umount "/lib/modules/$kver" 2>/dev/null || true
}
install_modprobe_conf() {
	mkdir -p "$modtree/extra" /run/modprobe.d
	cp "$(driver_module_path)" "$modtree/extra/"
	cp -L "/lib/modules/$kver"/modules.builtin* "$modtree/" 2>/dev/null || true
	mount --bind "$modtree" "/lib/modules/$kver"
	depmod -a "$kver"
	install -m644 "$REPO_DIR/modprobe.d/rust_loop.conf" "$conf"
}
# loaded_in_drop_in: rust_loop is loaded, under loop.c's names.
loaded_in_drop_in() {
	wait_until 10 test -b /dev/loop0 -a -c /dev/loop-control &&
		driver_loaded && test ! -e /dev/rloop-control
}
loaded_with_loop5() { loaded_in_drop_in && test -b /dev/loop5; }
# opening NODE: open NODE for reading and close it (the open autoloads).
opening() { : <"$1"; }
unload_quiet() { cleanup_driver && driver_unloaded; }
at_exit restore_modprobe
require "unload rust_loop before the autoload checks" unload_quiet
require "install rust_loop.ko and modprobe.d/rust_loop.conf" install_modprobe_conf
mknod "$WORK/loop-control" c 10 237
mknod "$WORK/loop5" b 7 5
check "opening c 10:237 (char-major-10-237) succeeds" opening "$WORK/loop-control"
check "... it loaded rust_loop drop_in=1" loaded_in_drop_in
require "unload" unload_quiet
check "opening b 7:5 (block-major-7-5) succeeds" opening "$WORK/loop5"
check "... it loaded rust_loop drop_in=1, which created loop5" loaded_with_loop5
require "unload" unload_quiet
check "modprobe loop succeeds" modprobe loop
check "... it loaded rust_loop drop_in=1" loaded_in_drop_in
check "modprobe -r loop unloads rust_loop" bash -c "udevadm settle; modprobe -r loop"
check "rust_loop is gone" wait_until 10 driver_unloaded
