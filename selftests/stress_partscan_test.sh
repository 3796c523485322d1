#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# udev against `losetup -P`: the partitions must exist when losetup returns.
#
# Each iteration binds a 2-partition image with `losetup -P`, checks that both
# partitions (device node and sysfs entry) exist right away, and detaches.
# Meanwhile dev_opener keeps 2 threads opening and reading the whole disk, and
# the guest's real systemd-udevd probes every uevent with blkid. Debian's rules
# only do that for loop*, so for the test's duration a rules file gives rloop*
# the same treatment. loop.c 7.2 was measured missing a partition in 2-7 % of
# iterations under this load; rust_loop must miss none.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

iterations=$(stress_iterations 20)
name=${LOOP_PREFIX}0
dev=$(loop_dev 0)
rules=/run/udev/rules.d/61-rust-loop-stress.rules
opener_pid=

stress_cleanup() {
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
	if ! out=$(losetup -d "$dev" 2>&1); then
		stress_note "iteration $i: detach: $out"
		if [[ $out == *busy* ]]; then ((busy++)); else ((errors++)); fi
	fi
	if ! wait_loop_unbound 0; then
		stress_note "iteration $i: $name still bound 10 s after losetup -d"
		((errors++))
	fi
done

summary="$LOOP_PREFIX: $iterations iterations, $missing missing partitions, $busy EBUSY, $errors other errors"
stress_note "$summary"
((missing + busy + errors == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary"
