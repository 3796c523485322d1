# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Shared helpers for the shell tests. Sourced by every *_test.sh.
#
# LOOP_PREFIX selects the node names under test, LOOP_DRIVER the module:
#   LOOP_PREFIX=rloop (default)              rust_loop.ko, /dev/rloopN
#   LOOP_PREFIX=loop                         loop.c's loop.ko, /dev/loopN
#   LOOP_PREFIX=loop LOOP_DRIVER=rust_loop   rust_loop.ko drop_in=1, /dev/loopN
# LOOP_DRIVER defaults to the module that owns the prefix. Modules are loaded
# explicitly: the VM boots with modprobe.blacklist=loop. RUST_LOOP_KO
# overrides the path of rust_loop.ko (e.g. an older build, to show a test
# failing on it).

LOOP_PREFIX=${LOOP_PREFIX:-rloop}
LOOP_DRIVER=${LOOP_DRIVER:-}
REPO_DIR=${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SCRATCH=${SCRATCH:-/tmp}
# Programs built by the Makefile (exported by it; a plain in-tree build puts
# them beside this file).
BIN_DIR=${LOOP_TEST_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
export LOOP_PREFIX LOOP_DRIVER SCRATCH BIN_DIR

# Lines in the kernel log that show a kernel bug (vm/run.sh reads the same file).
BAD_KLOG_PATTERN=$(grep -v "^#" "$(dirname "${BASH_SOURCE[0]}")/bad_klog_pattern")

# Paths of the driver's nodes.
loop_dev() { echo "/dev/${LOOP_PREFIX}$1"; }
loop_ctl() { echo "/dev/${LOOP_PREFIX}-control"; }
# loop_sys N -> /sys/block/<prefix>N
loop_sys() { echo "/sys/block/${LOOP_PREFIX}$1"; }

# The module under test (derived from LOOP_PREFIX each time: tests switch
# prefixes with a local LOOP_PREFIX).
driver_module_name() {
	if [[ -n $LOOP_DRIVER ]]; then
		echo "$LOOP_DRIVER"
	elif [[ $LOOP_PREFIX == rloop ]]; then
		echo rust_loop
	else
		echo loop
	fi
}
module_path() {
	if [[ $1 == rust_loop ]]; then
		echo "${RUST_LOOP_KO:-$REPO_DIR/rust_loop.ko}"
	else
		echo "$KBUILD_DIR/drivers/block/loop.ko"
	fi
}
driver_module_path() { module_path "$(driver_module_name)"; }
# rust_loop under loop.c's names.
drop_in_mode() { [[ $(driver_module_name) == rust_loop && $LOOP_PREFIX == loop ]]; }
driver_loaded() { [[ -d /sys/module/$(driver_module_name) ]]; }
driver_unloaded() { ! driver_loaded; }
other_module_name() { [[ $(driver_module_name) == rust_loop ]] && echo loop || echo rust_loop; }
# Both drivers want block major 7: the one not under test must be absent.
other_driver_absent() { [[ ! -d /sys/module/$(other_module_name) ]]; }

# note_module_text: append "name text-address size init-text-address" of the
# driver just loaded to $SCRATCH/module-text.log: after the unload, kmemleak
# shows the module's frames as bare addresses, and kmemleak_check.sh
# attributes them with this log.
note_module_text() {
	local name addr size init
	name=$(driver_module_name)
	read -r _ size _ _ _ addr _ < <(grep "^$name " /proc/modules) || return 0
	init=$(cat "/sys/module/$name/sections/.init.text" 2>/dev/null) || init=0x0
	echo "$name $addr $size $init" >>"$SCRATCH/module-text.log"
}

# load_driver [module parameters...] (drop-in mode adds drop_in=1)
load_driver() {
	local drop_in=()
	drop_in_mode && drop_in=(drop_in=1)
	insmod "$(driver_module_path)" "${drop_in[@]}" "$@" || return 1
	note_module_text
	udevadm settle 2>/dev/null || true
	local _
	for _ in $(seq 50); do [[ -b $(loop_dev 0) ]] && return 0; sleep 0.1; done
	echo "load_driver: $(loop_dev 0) did not appear" >&2
	return 1
}

unload_driver() {
	udevadm settle 2>/dev/null || true
	rmmod "$(driver_module_name)"
}

# wait_until SECONDS COMMAND... : poll COMMAND every 0.1 s until it succeeds.
# Used where loop.c itself is asynchronous (udev holding a device open
# delays the lazy LOOP_CLR_FD teardown), never to hide a wrong result.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# loop_bound N: the "loop" sysfs group exists only while device N is bound.
loop_bound() { [[ -d $(loop_sys "$1")/loop ]]; }
loop_unbound() { ! loop_bound "$1"; }
wait_loop_unbound() { wait_until 10 loop_unbound "$1"; }

# detach_loop N: losetup -d, then wait for the (lazy) teardown.
detach_loop() { losetup -d "$(loop_dev "$1")" && wait_loop_unbound "$1"; }

# Small predicates for check/require; they explain a mismatch on stderr.
# fails COMMAND...: COMMAND must fail.
fails() { ! "$@"; }
# equals GOT WANT [WHAT]
equals() { [[ $1 == "$2" ]] || { echo "${3:-value} is '$1', want '$2'" >&2; return 1; }; }
# sysfs_is N ATTR VALUE: /sys/block/<prefix>N/ATTR reads VALUE.
sysfs_is() { equals "$(<"$(loop_sys "$1")/$2")" "$3" "$(loop_sys "$1")/$2"; }
# size_is DEVICE BYTES
size_is() { equals "$(blockdev --getsize64 "$1")" "$2" "size of $1"; }

# bounded SECONDS COMMAND...: run COMMAND, but give up on it after SECONDS
# (status 124), showing the kernel stacks of it and its children and every
# block device with requests in flight: a task stuck in the kernel cannot be
# killed, and waiting for it would hang the whole suite (and lose the log).
# COMMAND's output goes through files, shown once it ends or is given up on:
# a task left running must not hold the caller's pipe open (a `check` or a
# $(...) would wait for it and the bound would not hold).
bounded() {
	local limit=$1 pid deadline out err status=0
	shift
	out=$(mktemp "$SCRATCH/bounded.XXXXXX") err=$(mktemp "$SCRATCH/bounded.XXXXXX")
	"$@" >"$out" 2>"$err" &
	pid=$!
	deadline=$((SECONDS + limit))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			echo "still running after ${limit}s, stuck in the kernel? $*" >&2
			show_stuck "$pid" >&2
			status=124
			break
		fi
		sleep 0.1
	done
	((status)) || wait "$pid" || status=$?
	cat "$out"
	cat "$err" >&2
	rm -f "$out" "$err"
	return "$status"
}

# show_stuck PID: the kernel stacks of PID, its children and grandchildren
# (fio's job processes), and the in-flight counters (reads writes) of every
# block device that has any.
show_stuck() {
	local pid inflight
	# pgrep fails when it finds nothing: not an error here (and the tests'
	# ERR trap would otherwise print into the list).
	for pid in "$1" $(pgrep -P "$1" || true) $(pgrep -P "$1" | xargs -r -n1 pgrep -P || true); do
		echo "kernel stack of $pid ($(cat "/proc/$pid/comm" 2>/dev/null)):"
		cat "/proc/$pid/stack" 2>/dev/null
	done
	for inflight in /sys/block/*/inflight; do
		[[ $(<"$inflight") =~ ^[[:space:]]*0[[:space:]]+0$ ]] ||
			echo "in flight on ${inflight%/inflight}: $(<"$inflight")"
	done
}

# scratch_disk: the empty virtio-blk disk vm/run.sh attached with --disk, as
# /dev/vdX, found by the serial the runner passes in SCRATCH_DISK_SERIAL.
# The tests that need real storage fail without it: tmpfs is not real storage.
scratch_disk() {
	[[ -n ${SCRATCH_DISK_SERIAL:-} ]] || { echo "SCRATCH_DISK_SERIAL is not set" >&2; return 1; }
	disk_by_serial "$SCRATCH_DISK_SERIAL"
}

# disk_by_serial SERIAL -> /dev/vdX: the virtio disk vm/run.sh attached with
# --disk SERIAL:SIZE.
disk_by_serial() {
	local serial
	for serial in /sys/block/vd*/serial; do
		[[ -r $serial && $(<"$serial") == "$1" ]] || continue
		serial=${serial%/serial}
		echo "/dev/${serial##*/}"
		return 0
	done
	echo "no virtio disk with serial '$1': run the VM with vm/run.sh --disk" >&2
	return 1
}

# mkfs_quiet FSTYPE DEVICE [OPTIONS...]: a fresh file system, whatever was there.
mkfs_quiet() {
	local fstype=$1 device=$2
	shift 2
	case $fstype in
	ext4) mkfs.ext4 -q -F "$@" "$device" ;;
	xfs) mkfs.xfs -q -f "$@" "$device" ;;
	*) echo "mkfs_quiet: unknown file system $fstype" >&2; return 1 ;;
	esac
}

# drop_caches: write back, then drop every clean page cache and dentry, so
# that what follows reads from the devices (cold caches).
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

# Best-effort teardown after a test, whatever state it left: unmount what sits
# on our devices, detach them all, unload the driver. Fails if the driver
# cannot be unloaded.
cleanup_driver() {
	driver_loaded || return 0
	release_devices
	# udev may still hold a device open for a moment after its last event;
	# deferred fputs of a device that backed another one come later still.
	wait_until 30 unload_attempt && return 0
	show_module_users
	return 1
}

# release_scratch_mount DIR: for at_exit: if DIR (a file system on the scratch
# disk) is still mounted, a step failed: release the driver's devices (they
# hold backing files on DIR) and unmount DIR, so that the next test finds the
# disk free.
release_scratch_mount() {
	mountpoint -q "$1" || return 0
	release_devices
	bounded 20 umount "$1"
}

# release_devices: unmount what sits on the driver's devices (lazily if need
# be) and detach them all, top ones first: a device backed by another one has
# the higher number in the tests, and holds the one below it.
release_devices() {
	local mnt sys
	while read -r _ mnt; do
		bounded 20 umount "$mnt" 2>/dev/null || bounded 20 umount -l "$mnt" || true
	done < <(awk -v p="^/dev/${LOOP_PREFIX}[0-9]" '$1 ~ p { print $1, $2 }' /proc/mounts)
	for sys in $(printf '%s\n' /sys/block/"${LOOP_PREFIX}"[0-9]* | sort -rV); do
		[[ -d $sys/loop ]] || continue
		bounded 10 losetup -d "/dev/${sys##*/}" 2>/dev/null || true
		wait_loop_unbound "${sys##*/"${LOOP_PREFIX}"}" || true
	done
}

# unload_attempt: one rmmod (after udev settles), bounded in time. An rmmod
# that outlives its bound (a slow module exit under TCG) may still finish:
# success is the module being gone, not rmmod's status. A bound that runs
# out prints the stacks of what is stuck; rmmod's "in use" while udev still
# holds a node is retried quietly.
unload_attempt() {
	driver_unloaded && return 0
	bounded 120 unload_driver 2>&1 | grep -v "is in use" >&2 || true
	driver_unloaded
}

# show_module_users: why the driver's module cannot be unloaded — whether it
# is still loaded, its reference count and holders, and every process that
# has one of its nodes open. It only looks: no unload attempt of its own.
show_module_users() {
	local mod fd target
	mod=$(driver_module_name)
	{
		echo "loaded: $(driver_loaded && echo yes || echo no) ($(cat "/sys/module/$mod/initstate" 2>/dev/null)), refcnt $(cat "/sys/module/$mod/refcnt" 2>/dev/null), holders: $(ls "/sys/module/$mod/holders" 2>/dev/null)"
		# A module exit in progress (initstate "going") or udev still busy.
		for fd in $(pgrep -x rmmod || true) $(pgrep -x "(udev-worker)" || true) $(pgrep -x systemd-udevd || true); do
			echo "$(cat "/proc/$fd/comm" 2>/dev/null) $fd in $(cat "/proc/$fd/wchan" 2>/dev/null):"
			sed 's/^/  /' "/proc/$fd/stack" 2>/dev/null
		done
		echo "udev queue: $(udevadm settle --timeout=0 >/dev/null 2>&1 && echo empty || echo busy)"
		for fd in /proc/[0-9]*/fd/*; do
			target=$(readlink "$fd" 2>/dev/null) || continue
			[[ $target == "/dev/${LOOP_PREFIX}"* ]] || continue
			fd=${fd#/proc/}
			echo "open: $target by pid ${fd%%/*} ($(cat "/proc/${fd%%/*}/comm" 2>/dev/null))"
		done
		grep "^/dev/${LOOP_PREFIX}" /proc/mounts | sed 's/^/mounted: /'
		for fd in /sys/block/"${LOOP_PREFIX}"[0-9]*/loop/backing_file; do
			[[ -r $fd ]] && echo "bound: ${fd%/loop/backing_file} -> $(<"$fd")"
		done
	} >&2
}

# Kernel log markers: each test writes one at its start, so a bad line can be
# attributed to the test during which it appeared.
klog_mark() { echo "rust_loop-selftests: $*" >/dev/kmsg; }
# klog_since MARK: kernel log lines after the last line containing MARK
# (the whole log if MARK is absent).
klog_since() {
	dmesg | awk -v m="$1" 'index($0, m) { n = 0; delete l; next } { l[n++] = $0 }
		END { for (i = 0; i < n; i++) print l[i] }'
}
# klog_clean_since MARK: fail, printing them, if bad lines follow MARK.
klog_clean_since() {
	local bad
	bad=$(klog_since "$1" | grep -E "$BAD_KLOG_PATTERN") || return 0
	printf '%s\n' "$bad" | head -40 >&2
	return 1
}

# run_c_test NAME [UNLOAD_SECONDS]: the wrapper of a C test on
# kselftest_harness. lib.mk's runner cannot load a module, so this loads the
# driver under test, runs $BIN_DIR/NAME (its TAP is the output), unloads the
# driver and checks the kernel log; a problem around the test is a
# diagnostic line and a failing status. UNLOAD_SECONDS: how long the unload
# may take after a failed run left many devices behind (default 0: no more
# than cleanup_driver's own wait). Returns the status to exit with.
run_c_test() {
	local name=$1 unload_seconds=${2:-0} status=0 bad
	if ((EUID != 0)); then
		ktap_print_header
		ktap_skip_all "$name loads a module and configures devices: it needs root"
		return "$KSFT_SKIP"
	fi
	klog_mark "begin $name"
	# A module left behind by an interrupted earlier test was already
	# reported there.
	if driver_loaded && ! cleanup_driver; then
		echo "# $(driver_module_name) is loaded and cannot be unloaded"
		return 1
	fi
	if ! other_driver_absent; then
		echo "# the other loop driver is loaded: block major 7 is taken"
		return 1
	fi
	if ! load_driver; then
		echo "# cannot load $(driver_module_path)"
		return 1
	fi
	"$BIN_DIR/$name" || status=1
	if ! cleanup_driver 2>/dev/null && ! wait_until "$unload_seconds" driver_unloaded; then
		echo "# cannot unload $(driver_module_name) after the test"
		status=1
	fi
	if ! bad=$(klog_clean_since "begin $name" 2>&1); then
		echo "# the kernel log shows a bug during $name:"
		printf '%s\n' "$bad" | tap_diag
		status=1
	fi
	return "$status"
}

# ---------------------------------------------------------------------------
# TAP for shell tests. A test calls tap_start_driver_test (or tap_start), then
# check/require per step. lib.mk's runner nests this TAP under the test's own
# result line; summarize.sh counts both levels. Exit status: 0 when every check
# passed, 1 otherwise (a skipped check is never a pass: see summarize.sh).

# The kernel's own KTAP helpers (tools/testing/selftests/kselftest/). The
# Makefile exports KSELFTEST_DIR; a test run by hand finds the kernel tree
# the VM runner names (KBUILD_DIR) or the project's cached source.
if [[ -z ${KSELFTEST_DIR:-} ]]; then
	if [[ -n ${KBUILD_DIR:-} ]]; then
		KSELFTEST_DIR=$KBUILD_DIR/source/tools/testing/selftests
	else
		KSELFTEST_DIR=${RUST_LOOP_CACHE:-$HOME/.cache/rust-loop}/src/linux/tools/testing/selftests
	fi
fi
# shellcheck source=/dev/null
source "$KSELFTEST_DIR/kselftest/ktap_helpers.sh"
TAP_CLEANUPS=()

# Indent a command's output as TAP diagnostics.
tap_diag() { sed -e 's/^/# /'; }

# ktap_helpers.sh echoes descriptions unquoted: no globbing of them here.
tap_ok() { local -; set -f; ktap_test_pass "$1"; }
tap_not_ok() { local -; set -f; ktap_test_fail "$1"; }
tap_skip() { local -; set -f; ktap_print_msg "$1: $2"; ktap_test_skip "$1"; }

# check DESCRIPTION COMMAND... : run COMMAND (in a subshell), report it, go on.
# Each step is marked in the kernel log, so that its lines can be placed
# between steps, and a step that fails says how long it ran.
check() {
	local desc=$1 out start=$SECONDS
	shift
	echo "rust_loop-selftests: ${TAP_NAME:-}: $desc" >/dev/kmsg 2>/dev/null || true
	if out=$("$@" 2>&1); then
		tap_ok "$desc"
	else
		tap_not_ok "$desc"
		{
			echo "command: $* (failed after $((SECONDS - start)) s)"
			[[ -z $out ]] || printf '%s\n' "$out"
		} | tap_diag
	fi
	return 0
}

# require DESCRIPTION COMMAND... : like check, but the test cannot go on
# without it: stop here (the EXIT trap still cleans up).
require() {
	local before=$KTAP_CNT_FAIL
	check "$@"
	((KTAP_CNT_FAIL == before)) || exit 1
}

# at_exit COMMAND... : run COMMAND at the end of the test (last added, first run).
at_exit() { TAP_CLEANUPS=("$(printf '%q ' "$@")" "${TAP_CLEANUPS[@]}"); }

tap_unexpected() {
	tap_not_ok "unexpected failure at line $1: $2"
	exit 1
}

tap_finish() {
	local status=$? cmd
	trap - ERR
	set +e
	for cmd in "${TAP_CLEANUPS[@]}"; do
		eval "$cmd"
	done
	check "kernel log clean during $TAP_NAME" klog_clean_since "begin $TAP_NAME"
	ktap_set_plan $((KTAP_TESTNO - 1))
	ktap_print_totals
	((KTAP_CNT_FAIL == 0 && status == 0 && KTAP_CNT_PASS > 0)) && exit "$KSFT_PASS"
	exit "$KSFT_FAIL"
}

# tap_start NAME: begin TAP output, trap failures, mark the kernel log.
tap_start() {
	TAP_NAME=$1
	ktap_print_header
	klog_mark "begin $TAP_NAME"
	# No TERM trap: bash would defer it until a command stuck in the kernel
	# returns, so the runner's timeout could never end the test.
	trap tap_finish EXIT
	set -E
	trap 'tap_unexpected "$LINENO" "$BASH_COMMAND"' ERR
}

# tap_start_driver_test NAME: tap_start + load the driver under test (and
# unload it, checked, at the end) + a private work folder on $SCRATCH.
tap_start_driver_test() {
	if ((EUID != 0)); then
		ktap_print_header
		ktap_skip_all "$1 loads a module and configures devices: it needs root"
		exit "$KSFT_SKIP"
	fi
	tap_start "$1"
	WORK=$(mktemp -d "$SCRATCH/$1.XXXXXX")
	at_exit rm -rf "$WORK"
	check "$(driver_module_name) is not loaded before the test" driver_unloaded
	if driver_loaded; then cleanup_driver || true; fi
	require "the other loop driver is not loaded" other_driver_absent
	require "load $(driver_module_name)" load_driver
	at_exit check "unload $(driver_module_name) after the test" cleanup_driver
}
