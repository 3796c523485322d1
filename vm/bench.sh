#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: rust_loop against loop.c on the non-debug kernel, in one VM
# boot, then a report. Three groups (bench/guest-bench.sh): "devices" (B9,
# device management cost at populations of up to 4,000 devices, udevd
# running), "tmpfs" (benchmarks B1-B4 and B6-B8 of perf-anchors.md, backing
# files on tmpfs) and "disk" (real storage: backing files on ext4 and on xfs
# on two virtio-blk disks).
#
#   vm/bench.sh          BENCH_GROUPS="devices tmpfs disk" (the default; any
#                        subset runs those groups only),
#                        BENCH_DEVICES=N,N,... (devices group populations,
#                        default 500,1000,2000,4000),
#                        BENCH_DEVICES_SAMPLES=N (timed operations of each
#                        kind per population, default 50),
#                        BENCH_DEVICES_REPS=N (rounds per driver, devices
#                        group, default 2),
#                        BENCH_REPS=N (rounds per driver, tmpfs group, default 5),
#                        BENCH_DISK_REPS=N (rounds per driver, disk group;
#                        default BENCH_REPS if set, else 2),
#                        BENCH_RUNTIME=S (measured seconds per fio run, after a
#                        1 s ramp; default 4, >= 3)
#
# Builds (or waits for) the bench kernel, builds rust_loop.ko against it in
# the cache (never touching the repository's own build products), runs
# bench/guest-bench.sh in the VM, and writes results/bench-DATE/: results.md
# (the table, also printed), results.json, ratios.png, and the raw files.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

groups=${BENCH_GROUPS:-devices tmpfs disk}
reps=${BENCH_REPS:-5}
disk_reps=${BENCH_DISK_REPS:-${BENCH_REPS:-2}}
runtime=${BENCH_RUNTIME:-4}
((runtime >= 3)) || die "BENCH_RUNTIME must be at least 3 s (the CPU sampler needs it)"
((reps >= 1 && disk_reps >= 1)) || die "BENCH_REPS and BENCH_DISK_REPS must be at least 1"
devices_reps=${BENCH_DEVICES_REPS:-2}
devices=${BENCH_DEVICES:-500,1000,2000,4000}
devices_samples=${BENCH_DEVICES_SAMPLES:-50}
((devices_reps >= 1 && devices_samples >= 1)) || die "BENCH_DEVICES_REPS and BENCH_DEVICES_SAMPLES must be at least 1"
[[ $devices =~ ^[0-9]+(,[0-9]+)*$ ]] || die "BENCH_DEVICES: comma-separated populations, ascending"
in_groups() { [[ " $groups " == *" $1 "* ]]; }
for group in $groups; do
	[[ $group == tmpfs || $group == disk || $group == devices ]] ||
		die "BENCH_GROUPS: unknown group '$group' (devices, tmpfs, disk)"
done
in_groups tmpfs || in_groups disk || in_groups devices || die "BENCH_GROUPS names no group (devices, tmpfs, disk)"
# The disk group's virtio disks (vm/run.sh --disk: empty at every boot,
# QEMU cache=none), one per file system.
DISK_EXT4=rloop-bench-ext4 DISK_XFS=rloop-bench-xfs DISK_SIZE=1536M

BUILD=$(kernel_build_dir bench)

# Another session may be building this very kernel folder right now; a second
# build in the same folder would break both. Its make (and its config steps)
# name the folder on their command line, and its log keeps growing.
build_running() {
	pgrep -f -- "O[= ]$BUILD( |$)" >/dev/null ||
		[[ -n $(find "$BUILD/build.log" -mmin -2 2>/dev/null) ]]
}
while [[ ! -f $BUILD/.build-complete ]] && build_running; do
	log "waiting for the bench kernel build running in $BUILD"
	sleep 30
done
"$REPO_DIR/vm/build-kernel.sh" bench >/dev/null

# rust_loop.ko for the bench kernel, built in a copy of the sources. Per
# checkout (GUEST_OUT is): a bench of another worktree waiting for the VM
# must not find this one's module in place of its own.
module_dir="$GUEST_OUT/bench-module"
mkdir -p "$module_dir"
rm -rf "$module_dir/rust_loop"
cp -a "$REPO_DIR/Kbuild" "$REPO_DIR/rust_loop.rs" "$REPO_DIR/rust_loop" "$module_dir/"
log "building rust_loop.ko against the bench kernel"
make -s -C "$BUILD" M="$module_dir" "${KMAKE_TOOLS[@]}" modules

bin_dir="$GUEST_OUT/bench-bin"
mkdir -p "$bin_dir"
cc -O2 -Wall -Wextra -Werror -pthread -o "$bin_dir/loop_setup_bench" "$REPO_DIR/bench/loop_setup_bench.c"

stamp=$(date +%Y%m%d-%H%M%S)
# The guest can write only to vm/run.sh's guest-out folder (and its tmpfs).
raw="$GUEST_OUT/bench-$stamp"
out="$REPO_DIR/results/bench-$stamp"
mkdir -p "$raw" "$out"
# Twice the expected time, plus 5 minutes. tmpfs group: 15 fio runs
# (runtime + ~2 s each) and ~15 s of setup benchmarks per driver round, 6
# runs per raw round (one per four driver rounds); about 19 minutes with the
# defaults. Disk group: 24 fio runs per round, each runtime + ~8 s under
# TCG (fio's start, sync and the cache drop; measured 11 s at 3 s), a raw
# round per four driver rounds, plus ~1 minute to fill the disks; about
# 25 minutes with the defaults.
fio_seconds=$((runtime + 2))
timeout=300 vm_disks=() disk_env=
if in_groups tmpfs; then
	timeout=$((timeout + (2 * reps * (15 * fio_seconds + 15) + (reps / 2 + 1) * 6 * fio_seconds) * 2))
fi
if in_groups devices; then
	# A round (up to 4,000 devices, udev settling) took 3.5 min under TCG.
	timeout=$((timeout + 2 * devices_reps * 300 * 2))
fi
if in_groups disk; then
	timeout=$((timeout + ((2 * disk_reps + (disk_reps + 1) / 2) * 24 * (runtime + 8) + 120) * 2))
	vm_disks=(--disk "$DISK_EXT4:$DISK_SIZE" --disk "$DISK_XFS:$DISK_SIZE")
	disk_env="BENCH_DISK_EXT4=$DISK_EXT4 BENCH_DISK_XFS=$DISK_XFS"
fi
log "running the benchmark VM: groups '$groups'; $devices_reps (devices) / $reps (tmpfs) / $disk_reps (disk) rounds per driver, ${runtime} s per fio run (timeout ${timeout} s)"
set +e
"$REPO_DIR/vm/run.sh" --variant bench --timeout "$timeout" "${vm_disks[@]}" -- \
	"BENCH_OUT=$raw RUST_LOOP_KO=$module_dir/rust_loop.ko SETUP_BENCH=$bin_dir/loop_setup_bench BENCH_GROUPS='$groups' BENCH_DEVICES=$devices BENCH_DEVICES_SAMPLES=$devices_samples BENCH_DEVICES_REPS=$devices_reps BENCH_REPS=$reps BENCH_DISK_REPS=$disk_reps BENCH_RUNTIME=$runtime $disk_env $REPO_DIR/bench/guest-bench.sh" |
	tee "$out/console.log"
vm_status=${PIPESTATUS[0]}
set -e
cp -r "$raw" "$out/raw"
rm -rf "$raw"
((vm_status == 0)) || die "the benchmark VM failed (status $vm_status); console log and partial results in $out"

python3 "$REPO_DIR/bench/report.py" "$out/raw" "$out"
# ratios.png plots the tmpfs and disk rows; the devices group has its own table.
if grep -qv '^#' "$out/ratios.dat"; then
	gnuplot -e "datafile='$out/ratios.dat'; outfile='$out/ratios.png'" "$REPO_DIR/bench/ratios.gp"
fi
log "results: $out (results.md, results.json, ratios.png)"
