#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The benchmark session, inside the VM (vm/bench.sh starts it through
# vm/run.sh), in up to two groups, each against loop.c ("loop", /dev/loopN)
# and rust_loop ("rloop", /dev/rloopN) in rounds ordered A B B A, with the
# backing file itself ("raw") in rounds of its own. Each driver round loads
# its driver, runs every benchmark of the group once and unloads it: both
# drivers want block major 7, so they are never loaded together.
#
#  tmpfs  B1-B4, B6-B8 of perf-anchors.md, backing files on a tmpfs; a raw
#         round before every fourth driver round.
#  devices  B9: device management cost (LOOP_CTL_ADD, LOOP_CTL_REMOVE,
#         GET_FREE + bind + unbind) at populations of BENCH_DEVICES devices
#         (default 500,1000,2000,4000), with udevd running as in a real
#         system; runs first, since the other groups stop udevd.
#  disk   real storage: a 256 MiB backing file, written in full with random
#         data, on ext4 and on xfs on two virtio-blk disks (vm/run.sh --disk,
#         QEMU cache=none). For each file system, the device in direct-I/O
#         and in buffered mode: 4k randread and randwrite at QD1 (psync) and
#         QD32 (io_uring, one job), 1 MiB sequential read and write (io_uring
#         QD8). fio on the device always uses --direct=1. The raw file runs
#         the same jobs with --direct=1 (beside the dio mode) and --direct=0
#         (beside the buffered mode). Every run starts with cold caches
#         (sync, drop_caches), which also keeps the writeback of one run out
#         of the next. A raw round before every fourth driver round.
#
# Raw results go to $BENCH_OUT for bench/report.py: ROUND-ARM-JOB.fio.json
# (fio's JSON), ROUND-ARM-JOB.stat (guest CPU and context-switch counters
# around the steady part of the run), ROUND-ARM-JOB.json (loop_setup_bench).
# Jobs of the disk group are named D-FS-MODE-KIND-RW.
#
# Environment: BENCH_OUT, RUST_LOOP_KO, SETUP_BENCH (the loop_setup_bench
# binary), KBUILD_DIR and SCRATCH (from vm/run.sh), BENCH_GROUPS ("tmpfs
# disk" by default), BENCH_REPS (rounds per driver, tmpfs group),
# BENCH_DISK_REPS (rounds per driver, disk group), BENCH_RUNTIME (measured
# seconds per fio run, after a 1 s ramp), BENCH_DISK_EXT4 and BENCH_DISK_XFS
# (the serials of the disk group's virtio disks), BENCH_DEVICES (the devices
# group's populations), BENCH_DEVICES_SAMPLES (timed operations of each kind
# per population), BENCH_DEVICES_REPS (rounds per driver, devices group).
set -euo pipefail

: "${BENCH_OUT:?}" "${RUST_LOOP_KO:?}" "${SETUP_BENCH:?}" "${KBUILD_DIR:?}" "${SCRATCH:?}"
groups=${BENCH_GROUPS:-devices tmpfs disk}
reps=${BENCH_REPS:-5}
disk_reps=${BENCH_DISK_REPS:-2}
runtime=${BENCH_RUNTIME:-4}
devices_sizes=${BENCH_DEVICES:-500,1000,2000,4000}
devices_samples=${BENCH_DEVICES_SAMPLES:-50}
devices_reps=${BENCH_DEVICES_REPS:-2}
ramp=1
# A fio run that has not ended this long after its planned end is stuck.
stall_limit=120
work=$SCRATCH/bench
data_size=256M
sparse_size=1G

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*"; }

# Loading and unloading a driver, and show_stuck, are the selftests' own
# (RUST_LOOP_KO names the module built for this kernel).
# shellcheck source=../selftests/lib.sh
source "$(dirname "$0")/../selftests/lib.sh"
driver_up() {
	LOOP_PREFIX=$1 other_driver_absent && LOOP_PREFIX=$1 driver_unloaded ||
		{ log "a loop driver is already loaded"; return 1; }
	LOOP_PREFIX=$1 load_driver
}
driver_down() { LOOP_PREFIX=$1 cleanup_driver; }

# attach DEVICE FILE dio|buf: attach with the stock losetup (LOOP_CONFIGURE)
# and check that the mode took effect.
attach() {
	local device=$1 file=$2 direct=off want=0 dio
	if [[ $3 == dio ]]; then direct=on want=1; fi
	losetup --direct-io=$direct "$device" "$file"
	dio=$(<"/sys/block/${device#/dev/}/loop/dio")
	[[ $dio == "$want" ]] || { log "$device: loop/dio is $dio, wanted $want"; return 1; }
}

detach() { losetup -d "$1"; }

# Busy and total CPU ticks of the whole guest, and its context switches.
cpu_counters() {
	awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6 }
		/^ctxt/ { ctxt = $2 } END { print busy, total, ctxt }' /proc/stat
}

# run_fio ROUND ARM JOB TARGET FIO_ARGS...: one fio run. The counters are
# sampled in the steady state only (after fio's start-up and ramp, before
# its end), so that CPU per I/O does not count fio's start-up.
run_fio() {
	local id=$1-$2-$3 job=$3 target=$4
	shift 4
	{ sleep $((ramp + 1)); cpu_counters; sleep $((runtime - 2)); cpu_counters; } >"$BENCH_OUT/$id.stat" &
	local sampler=$!
	fio --name="$job" --filename="$target" --output-format=json --output="$BENCH_OUT/$id.fio.json" \
		--direct=1 --time_based --runtime="$runtime" --ramp_time=$ramp \
		--randrepeat=0 --norandommap --group_reporting "$@" &
	local fio_pid=$! deadline=$((SECONDS + ramp + runtime + stall_limit))
	# A stuck run cannot be killed (its tasks sleep in the kernel): say so,
	# show where it sleeps, and end the session rather than wait for the
	# VM's timeout.
	while kill -0 "$fio_pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "$id: fio still running ${stall_limit} s after its planned end: stuck"
			show_stuck "$fio_pid"
			exit 1
		fi
		sleep 0.2
	done
	wait "$fio_pid"
	wait "$sampler"
}

# The fio jobs, by benchmark: QD1 latency, 4k IOPS at depth, 1 MiB bandwidth.
fio_qd1() { run_fio "$@" --bs=4k --ioengine=psync --numjobs=1; }
fio_qd32() { run_fio "$@" --bs=4k --ioengine=io_uring --iodepth=32 --numjobs=2; }
fio_1m() { run_fio "$@" --bs=1M --ioengine=io_uring --iodepth=8 --numjobs=1; }
# Ming Lei's sparse-file job (perf-anchors.md, 1.3).
fio_sparse() { run_fio "$@" --bs=4k --ioengine=libaio --iodepth=16 --numjobs=1; }

# Data benchmarks through a device (ARM = loop or rloop) or on the backing
# file itself (ARM = raw).
# rw_jobs TARGET ROUND ARM PREFIX FIO_FUNCTION RW...
rw_jobs() {
	local target=$1 round=$2 arm=$3 name=$4 fio_function=$5 rw
	shift 5
	for rw in "$@"; do
		case $rw in
		randrw) "$fio_function" "$round" "$arm" "$name-$rw" "$target" --rw=randrw --rwmixread=70 ;;
		*) "$fio_function" "$round" "$arm" "$name-$rw" "$target" --rw="$rw" ;;
		esac
	done
}

# B6: random writes into a fresh sparse file, through a direct-I/O device.
sparse_job() {
	local round=$1 arm=$2 target=$work/sparse.img
	truncate -s $sparse_size "$target"
	if [[ $arm == raw ]]; then
		fio_sparse "$round" "$arm" B6-randwrite "$target" --rw=randwrite
	else
		attach "/dev/${arm}0" "$target" dio
		fio_sparse "$round" "$arm" B6-randwrite "/dev/${arm}0" --rw=randwrite
		detach "/dev/${arm}0"
	fi
	rm -f "$target"
}

# The ceiling: the same jobs on the backing file itself. B3's is B2's (on
# tmpfs, buffered and direct access to the file are the same copy). B4 has
# none: under TCG, fio's copies into its own 4 KiB user mappings cost more
# than a driver's copy into pinned pages through the kernel's direct map, so
# the file itself is slower than the devices (measured: about 0.2x).
raw_round() {
	local round=$1
	rw_jobs "$work/dio.img" "$round" raw B1 fio_qd1 randread randwrite
	rw_jobs "$work/dio.img" "$round" raw B2 fio_qd32 randread randwrite randrw
	sparse_job "$round" raw
}

driver_round() {
	local round=$1 driver=$2 dio_dev=/dev/${2}0 buf_dev=/dev/${2}1
	driver_up "$driver"
	attach "$dio_dev" "$work/dio.img" dio
	attach "$buf_dev" "$work/buf.img" buf
	rw_jobs "$dio_dev" "$round" "$driver" B1-dio fio_qd1 randread randwrite
	rw_jobs "$buf_dev" "$round" "$driver" B1-buf fio_qd1 randread randwrite
	rw_jobs "$dio_dev" "$round" "$driver" B2 fio_qd32 randread randwrite randrw
	rw_jobs "$buf_dev" "$round" "$driver" B3 fio_qd32 randread randwrite randrw
	rw_jobs "$dio_dev" "$round" "$driver" B4-dio fio_1m read write
	rw_jobs "$buf_dev" "$round" "$driver" B4-buf fio_1m read write
	detach "$dio_dev"
	detach "$buf_dev"
	sparse_job "$round" "$driver"
	"$SETUP_BENCH" "$driver" cycles configure 3 "$work/small.img" >"$BENCH_OUT/$round-$driver-B7-configure.json"
	"$SETUP_BENCH" "$driver" cycles legacy 3 "$work/small.img" >"$BENCH_OUT/$round-$driver-B7-legacy.json"
	"$SETUP_BENCH" "$driver" attach 64 "$work" >"$BENCH_OUT/$round-$driver-B8-attach.json"
	"$SETUP_BENCH" "$driver" ctl 256 64 1000 >"$BENCH_OUT/$round-$driver-B8-ctl.json"
	driver_down "$driver"
}

# ---------------------------------------------------------------------------
# The devices group (B9): udevd runs, as on a real system, and handles every
# device's uevents; loop_setup_bench waits for it to settle between steps.

# Debian's udev rules give loop* devices a watch (60-block), blkid probes and
# by-* links (60-persistent-storage) and SYSTEMD_READY=0 while unbound
# (99-systemd), and name no rloop*: the same rules for rloop*, for the
# devices group only, so that udevd does the same work for both drivers.
rloop_udev_rules=/run/udev/rules.d
install_rloop_udev_rules() {
	local rules=/usr/lib/udev/rules.d
	mkdir -p "$rloop_udev_rules"
	cat >"$rloop_udev_rules/60-rloop-bench-block.rules" <<-'EOF'
		ACTION!="remove", SUBSYSTEM=="block", KERNEL=="rloop*", OPTIONS+="watch"
		SUBSYSTEM=="block", KERNEL=="rloop[0-9]*", ENV{DEVTYPE}=="disk", TEST!="loop/backing_file", ENV{SYSTEMD_READY}="0"
	EOF
	sed -e 's/^KERNEL!="loop\*|[^"]*"/KERNEL!="rloop*"/' "$rules/60-persistent-storage.rules" \
		>"$rloop_udev_rules/60-rloop-bench-persistent-storage.rules"
	grep -q '^KERNEL!="rloop\*"' "$rloop_udev_rules/60-rloop-bench-persistent-storage.rules" ||
		{ log "could not derive the rloop* persistent-storage rules"; return 1; }
	udevadm control --reload
}
remove_rloop_udev_rules() {
	rm -f "$rloop_udev_rules"/60-rloop-bench-*.rules
	udevadm control --reload
}

devices_round() {
	local round=$1 driver=$2
	load_driver "$driver"
	"$SETUP_BENCH" "$driver" population "$devices_sizes" "$devices_samples" "$work/population.img" \
		>"$BENCH_OUT/$round-$driver-B9-population.json"
	unload_driver "$driver"
	# udevd still has the remove events of thousands of devices to handle.
	udevadm settle --timeout=600 || true
}

# ---------------------------------------------------------------------------
# The disk group: real storage.

disk_fs=(ext4 xfs)
disk_size=256M

disk_image() { echo "$work/disk-$1/bench.img"; }

# Cold caches: write back, then drop the clean page cache.
cold_cache() { sync && echo 3 >/proc/sys/vm/drop_caches; }

fio_disk_qd1() { cold_cache && run_fio "$@" --bs=4k --ioengine=psync --numjobs=1; }
fio_disk_qd32() { cold_cache && run_fio "$@" --bs=4k --ioengine=io_uring --iodepth=32 --numjobs=1; }
fio_disk_1m() { cold_cache && run_fio "$@" --bs=1M --ioengine=io_uring --iodepth=8 --numjobs=1; }

# disk_jobs TARGET ROUND ARM FS dio|buf: the disk group's jobs on a device
# in that mode, or on the raw file with fio --direct=1 (dio) or 0 (buf).
disk_jobs() {
	local target=$1 round=$2 arm=$3 fs=$4 mode=$5 direct=() kind rw
	[[ $arm != raw || $mode != buf ]] || direct=(--direct=0)
	for kind in qd1 qd32 1m; do
		for rw in randread randwrite; do
			[[ $kind != 1m ]] || rw=${rw#rand}
			"fio_disk_$kind" "$round" "$arm" "D-$fs-$mode-$kind-$rw" "$target" --rw="$rw" "${direct[@]}"
		done
	done
}

disk_raw_round() {
	local round=$1 fs mode
	for fs in "${disk_fs[@]}"; do
		for mode in dio buf; do
			disk_jobs "$(disk_image "$fs")" "$round" raw "$fs" "$mode"
		done
	done
}

disk_driver_round() {
	local round=$1 driver=$2 dev=/dev/${2}0 fs mode
	driver_up "$driver"
	for fs in "${disk_fs[@]}"; do
		for mode in dio buf; do
			attach "$dev" "$(disk_image "$fs")" "$mode"
			disk_jobs "$dev" "$round" "$driver" "$fs" "$mode"
			detach "$dev"
		done
	done
	driver_down "$driver"
}

disk_setup() {
	local fs serial disk
	log "disk group: $disk_size of random data on ext4 and on xfs on the virtio disks"
	head -c "$disk_size" /dev/urandom >"$work/random.img"
	for fs in "${disk_fs[@]}"; do
		if [[ $fs == ext4 ]]; then serial=${BENCH_DISK_EXT4:?}; else serial=${BENCH_DISK_XFS:?}; fi
		disk=$(disk_by_serial "$serial")
		case $fs in
		ext4) mkfs.ext4 -q -F "$disk" ;;
		xfs) mkfs.xfs -q -f "$disk" ;;
		esac
		mkdir -p "$work/disk-$fs"
		mount "$disk" "$work/disk-$fs"
		# Written in full: every read reaches the disk, none is a hole.
		cp "$work/random.img" "$(disk_image "$fs")"
		echo "disk_$fs $disk $(<"/sys/block/${disk#/dev/}/size") sectors, $(findmnt -no OPTIONS "$work/disk-$fs")" \
			>>"$BENCH_OUT/session.txt"
	done
	rm -f "$work/random.img"
	sync
}

disk_teardown() {
	local fs
	for fs in "${disk_fs[@]}"; do umount "$work/disk-$fs"; done
}

# ---------------------------------------------------------------------------

for group in $groups; do
	[[ $group == tmpfs || $group == disk || $group == devices ]] ||
		{ log "BENCH_GROUPS: unknown group '$group' (devices, tmpfs, disk)"; exit 1; }
done
in_groups() { [[ " $groups " == *" $1 "* ]]; }

mkdir -p "$BENCH_OUT" "$work"

{
	echo "date $(date "+%Y-%m-%d %H:%M")"
	echo "kernel $(uname -r)"
	echo "cpus $(nproc)"
	echo "groups $groups"
	echo "reps $reps"
	echo "disk_reps $disk_reps"
	echo "runtime $runtime"
	echo "devices $devices_sizes"
	echo "devices_samples $devices_samples"
	echo "devices_reps $devices_reps"
	echo "fio $(fio --version)"
} >"$BENCH_OUT/session.txt"

round=0
if in_groups devices; then
	log "devices group: populations $devices_sizes, $devices_samples samples each, udevd running"
	udevadm settle --timeout=600 || true
	echo "udevd $(pgrep -c systemd-udevd || echo 0) processes" >>"$BENCH_OUT/session.txt"
	install_rloop_udev_rules
	truncate -s 1M "$work/population.img"
	# Rounds A B B A ... (A = loop.c).
	for ((i = 0; i < 2 * devices_reps; i++)); do
		case $((i % 4)) in 0 | 3) driver=loop ;; *) driver=rloop ;; esac
		log "round $round: devices group, $driver"
		devices_round "$round" "$driver"
		round=$((round + 1))
	done
	rm -f "$work/population.img"
	remove_rloop_udev_rules
fi

# udev's rules probe (open and read) every new or changed loop* device but
# skip rloop*: left running, it would load loop.c alone during B7 and B8.
# Device nodes come from devtmpfs, so the other groups need no udev.
udevadm settle 2>/dev/null || true
udevadm control --exit 2>/dev/null || true

# abba_rounds REPS LABEL RAW_ROUND DRIVER_ROUND: REPS rounds per driver in
# the order A B B A ... (A = loop.c), a raw round before every fourth;
# numbers them on from $round.
abba_rounds() {
	local reps=$1 label=$2 raw=$3 driver_round=$4 i driver
	for ((i = 0; i < 2 * reps; i++)); do
		if ((i % 4 == 0)); then
			log "round $round: ${label}raw backing file"
			"$raw" "$round"
			round=$((round + 1))
		fi
		case $((i % 4)) in 0 | 3) driver=loop ;; *) driver=rloop ;; esac
		log "round $round: $label$driver"
		"$driver_round" "$round" "$driver"
		round=$((round + 1))
	done
}

if in_groups tmpfs; then
	log "tmpfs group: filling the backing files ($data_size of random data each)"
	head -c "$data_size" /dev/urandom >"$work/dio.img"
	cp "$work/dio.img" "$work/buf.img"
	head -c 32M "$work/dio.img" >"$work/small.img"

	abba_rounds "$reps" "" raw_round driver_round
	rm -f "$work/dio.img" "$work/buf.img" "$work/small.img"
fi

if in_groups disk; then
	disk_setup
	abba_rounds "$disk_reps" "disk group, " disk_raw_round disk_driver_round
	disk_teardown
fi
log "done: $round rounds"
