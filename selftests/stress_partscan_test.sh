#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# udev against `losetup -P`: the partitions must exist when losetup returns.
#
# Each iteration binds a 2-partition image with `losetup -P`, checks that both
# partitions (device node and sysfs entry) exist right away, and detaches.
# Meanwhile dev_opener keeps 2 threads opening and reading the whole disk, and
# the guest's real systemd-udevd probes every uevent with blkid. Debian's rules
# only do that for loop*, so for the test's duration a rules file gives rloop*
# the same treatment, including udev's inotify watch: when losetup closes the
# device it had open for writing, udevd re-reads the partition table
# (BLKRRPART), dropping and re-adding the partitions. udevd skips that re-read
# while it cannot flock the whole disk, so each check runs holding that lock
# (systemd's block device locking, what `udevadm lock` takes): what is checked
# is the driver's own scan. A scan the driver logs as failed fails too.
# Measured: without the lock, 100 iterations missed 2-3 partitions on
# rust_loop and 1 on loop.c, all to udev's watch re-read (and a 20-iteration
# run of rust_loop missed 1); with it, 300 iterations of each missed none.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

iterations=$(stress_iterations 20)
name=${LOOP_PREFIX}0
dev=$(loop_dev 0)
rules=/run/udev/rules.d/61-rust-loop-stress.rules
opener_pid=
disk_lock_fd=

stress_cleanup() {
	# An open lock fd would keep a detached device from tearing down.
	unlock_disk
	if [[ -n $opener_pid ]]; then
		kill "$opener_pid"
		wait "$opener_pid"
		while IFS= read -r line; do stress_note "$line"; done <"$STRESS_WORK/opener.err"
		stress_note "dev_opener: $(cat "$STRESS_WORK/opener.out")"
	fi
	if loop_bound 0; then
		losetup -d "$dev"
		wait_loop_unbound 0
	fi
	rm -f "$rules"
	udevadm control --reload
	udevadm settle
}

# 60-block.rules' watch (re-probe when a writer closes the node) and
# 60-persistent-storage.rules' blkid probe, for rust_loop's names.
install_udev_rules() {
	mkdir -p "$(dirname "$rules")"
	cat >"$rules" <<-'EOF'
		# Installed by stress_partscan_test.sh: give rloop* what Debian's rules give loop*.
		ACTION=="remove", GOTO="rust_loop_stress_end"
		SUBSYSTEM!="block", GOTO="rust_loop_stress_end"
		KERNEL!="rloop*", GOTO="rust_loop_stress_end"
		OPTIONS+="watch"
		TEST=="whole_disk", GOTO="rust_loop_stress_end"
		ENV{DEVTYPE}=="partition", IMPORT{parent}="ID_[!F]*", IMPORT{parent}="ID_", IMPORT{parent}="ID_F[!S]*", IMPORT{parent}="ID_F", IMPORT{parent}="ID_FS[!_]*", IMPORT{parent}="ID_FS"
		IMPORT{builtin}="blkid"
		ENV{ID_FS_USAGE}=="filesystem|other|crypto", ENV{ID_FS_UUID_ENC}=="?*", SYMLINK+="disk/by-uuid/$env{ID_FS_UUID_ENC}"
		ENV{ID_PART_ENTRY_UUID}=="?*", SYMLINK+="disk/by-partuuid/$env{ID_PART_ENTRY_UUID}"
		LABEL="rust_loop_stress_end"
	EOF
	udevadm control --reload
}

# lock_disk: take the whole-disk lock udevd honours (an exclusive BSD flock,
# as `udevadm lock` takes) on disk_lock_fd. Held by this shell rather than
# `udevadm lock CMD` so the check and its counters stay in this script.
lock_disk() {
	# Opens fail with ENXIO for a moment while a detached device runs down.
	wait_until 10 open_disk_for_lock || return 1
	flock --timeout 30 "$disk_lock_fd" || { unlock_disk; return 1; }
}
# shellcheck disable=SC2317 # only called through wait_until
open_disk_for_lock() { { exec {disk_lock_fd}<"$dev"; } 2>/dev/null; }
# Closing our only fd on the disk releases the lock.
unlock_disk() {
	if [[ -n $disk_lock_fd ]]; then exec {disk_lock_fd}<&-; fi
	disk_lock_fd=
}

# missing_partitions -> what is missing of p1 and p2, empty if nothing.
missing_partitions() {
	local p missing=
	for p in 1 2; do
		[[ -b /dev/${name}p$p ]] || missing+=" /dev/${name}p$p"
		[[ -e /sys/block/$name/${name}p$p ]] || missing+=" /sys/block/$name/${name}p$p"
	done
	echo "$missing"
}

stress_init
opener=$(stress_tool dev_opener) || stress_finish fail "dev_opener is not built"
pgrep -x systemd-udevd >/dev/null || stress_finish fail "systemd-udevd is not running"
install_udev_rules

img=$STRESS_WORK/parts.img
truncate -s 16M "$img"
printf 'label: dos\nstart=2048, size=8192\nstart=10240, size=8192\n' | sfdisk -q "$img" ||
	stress_finish fail "sfdisk failed"

# udev must really probe the device, or it is no actor in this test.
bind_file 0 "$img" -P || stress_finish fail "losetup -P failed"
udevadm settle
udevadm info --query=property "$dev" | grep -q '^ID_PART_TABLE_TYPE=dos$' ||
	stress_finish fail "udev did not probe $dev (no ID_PART_TABLE_TYPE)"
losetup -d "$dev"
wait_loop_unbound 0 || stress_finish fail "$name still bound after losetup -d"

"$opener" "$dev" 2 >"$STRESS_WORK/opener.out" 2>"$STRESS_WORK/opener.err" &
opener_pid=$!

missing=0 busy=0 errors=0
for ((i = 1; i <= iterations; i++)); do
	if ! out=$(losetup -P "$dev" "$img" 2>&1); then
		stress_note "iteration $i: $out"
		if [[ $out == *busy* ]]; then ((busy++)); else ((errors++)); fi
		continue
	fi
	# udevd handles the attach's uevents freely while losetup runs (that is
	# the race under test); only the check holds the lock, so that udev's
	# watch re-read after losetup's close cannot land inside it. A re-read
	# already running holds the lock itself and finishes first.
	if ! lock_disk; then
		stress_note "iteration $i: cannot lock $dev against udev"
		((errors++))
	fi
	lost=$(missing_partitions)
	if [[ -n $lost ]]; then
		((missing++))
		# Say whether the scan is merely late or never happens.
		late="not within 5 s"
		for ((ms = 0; ms <= 5000; ms += 50)); do
			if [[ -z $(missing_partitions) ]]; then
				late="present again after ${ms} ms"
				break
			fi
			sleep 0.05
		done
		stress_note "iteration $i: missing$lost ($late)"
	fi
	# From here udevd may re-read the partition table: not the driver's scan.
	unlock_disk
	if ! out=$(losetup -d "$dev" 2>&1); then
		stress_note "iteration $i: detach: $out"
		if [[ $out == *busy* ]]; then ((busy++)); else ((errors++)); fi
	fi
	if ! wait_loop_unbound 0; then
		stress_note "iteration $i: $name still bound 10 s after losetup -d"
		((errors++))
	fi
done

# The driver logs a failed scan of its own (EBUSY included) even when
# losetup succeeds; loop.c's line reads the same.
scan_failures=$(klog_since "begin $STRESS_NAME" | grep -E "partition scan of ${LOOP_PREFIX}[0-9]+ .*failed")
failed_scans=0
if [[ -n $scan_failures ]]; then
	failed_scans=$(wc -l <<<"$scan_failures")
	while IFS= read -r line; do stress_note "dmesg: $line"; done < <(head -10 <<<"$scan_failures")
fi

summary="$LOOP_PREFIX: $iterations iterations, $missing missing partitions, $busy EBUSY, $errors other errors,\
 $failed_scans failed scans logged"
stress_note "$summary"
((missing + busy + errors + failed_scans == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary"
