# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Shared helpers for the stress_*_test.sh scripts; sourced after lib.sh.
#
# A stress test calls stress_init, does its work, and ends with
# stress_finish pass|fail|skip MESSAGE. stress_finish runs the test's own
# stress_cleanup function (if it defines one), unloads the driver if
# stress_init loaded it, checks the kernel log written since stress_init,
# then prints the one-test TAP result and exits with the kselftest code.

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

STRESS_NAME=$(basename "$0" .sh)
STRESS_WORK=
STRESS_LOADED_DRIVER=0
STRESS_MARKED=0
STRESS_START=$SECONDS

# stress_iterations DEFAULT -> the iteration count: $STRESS_ITERATIONS_<name>
# for this test alone (<name> as in stress_<name>_test.sh, e.g. partscan),
# else $STRESS_ITERATIONS, else DEFAULT.
stress_iterations() {
	local name=${STRESS_NAME#stress_}
	local own=STRESS_ITERATIONS_${name%_test}
	echo "${!own:-${STRESS_ITERATIONS:-$1}}"
}

stress_note() { printf '# %s\n' "$*"; }

# stress_tool NAME -> path of the helper built from tools/NAME.c: in lib.sh's
# BIN_DIR (the Makefile's OUTPUT), or for a script run straight from the
# read-only repository in the VM, in $GUEST_OUT/selftests.
stress_tool() {
	local dir
	for dir in "$BIN_DIR" "${GUEST_OUT:+$GUEST_OUT/selftests}"; do
		if [[ -n $dir && -x $dir/$1 ]]; then
			echo "$dir/$1"
			return 0
		fi
	done
	echo "stress_tool: $1 is not built (make -C selftests [OUTPUT=DIR])" >&2
	return 1
}

# Loads the driver unless it is already loaded, makes a work folder on
# $SCRATCH (a tmpfs in the VM: backing files must not live on 9p) and marks the
# kernel log so stress_finish only looks at what this test caused.
stress_init() {
	echo "TAP version 13"
	echo "1..1"
	trap 'stress_finish fail "aborted"' EXIT
	[[ $(id -u) == 0 ]] || stress_finish skip "needs root"
	other_driver_absent || stress_finish fail "the other loop driver is loaded"
	if ! driver_loaded; then
		load_driver || stress_finish fail "cannot load $(driver_module_name)"
		STRESS_LOADED_DRIVER=1
	fi
	STRESS_WORK=$(mktemp -d "$SCRATCH/$STRESS_NAME.XXXXXX") ||
		stress_finish fail "cannot create a work folder in $SCRATCH"
	klog_mark "begin $STRESS_NAME"
	STRESS_MARKED=1
}

# stress_finish pass|fail|skip MESSAGE
stress_finish() {
	local result=$1 message=$2 bad line
	trap - EXIT
	if declare -F stress_cleanup >/dev/null; then
		stress_cleanup || { result=fail; message+="; cleanup failed"; }
	fi
	if ((STRESS_LOADED_DRIVER)); then
		# udev may still hold a device open for a moment after its last event.
		wait_until 10 unload_driver || { result=fail; message+="; rmmod $(driver_module_name) failed"; }
	fi
	[[ -n $STRESS_WORK ]] && rm -rf "$STRESS_WORK"
	if ((STRESS_MARKED)) && ! bad=$(klog_clean_since "begin $STRESS_NAME" 2>&1); then
		result=fail
		message+="; kernel log shows a kernel bug"
		while IFS= read -r line; do stress_note "dmesg: $line"; done <<<"$bad"
	fi
	stress_note "$STRESS_NAME took $((SECONDS - STRESS_START)) s"
	case $result in
	pass) echo "ok 1 $STRESS_NAME # $message"; exit "$KSFT_PASS" ;;
	skip) echo "ok 1 $STRESS_NAME # SKIP $message"; exit "$KSFT_SKIP" ;;
	*) echo "not ok 1 $STRESS_NAME # $message"; exit "$KSFT_FAIL" ;;
	esac
}

# bind_file N FILE [losetup options...]: attach FILE to device N and check it
# worked (losetup only prints warnings for some failures).
bind_file() {
	local n=$1 file=$2
	shift 2
	losetup "$@" "$(loop_dev "$n")" "$file" && loop_bound "$n"
}

# bind_file_in_mode N FILE buffered|direct: bind_file with direct I/O off or on,
# then check that loop/dio shows that mode. Prints what failed, prefixed with
# the mode.
bind_file_in_mode() {
	local n=$1 file=$2 mode=$3 dio=0
	local -a options=()
	if [[ $mode == direct ]]; then dio=1 options=(--direct-io=on); fi
	bind_file "$n" "$file" "${options[@]}" || { echo "$mode: losetup failed"; return 1; }
	if [[ $(cat "$(loop_sys "$n")/loop/dio") != "$dio" ]]; then
		echo "$mode: loop/dio is $(cat "$(loop_sys "$n")/loop/dio"), expected $dio"
		return 1
	fi
}

# tool_count FILE KEY -> N from the "KEY=N" a tool printed in FILE, or "?".
tool_count() {
	local value
	value=$(grep -so "\b$2=[0-9]*" "$1" | tail -1 | cut -d= -f2)
	echo "${value:-?}"
}

# run_bounded SECONDS COMMAND...: run COMMAND and return its status, or give
# up after SECONDS and return 124: a task stuck in the kernel cannot be
# killed, so `timeout` would wait for it forever.
run_bounded() {
	local deadline=$((SECONDS + $1)) pid
	shift
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			echo "$1 still running after the time limit: hung? kernel stacks:" >&2
			cat "/proc/$pid"/task/*/stack >&2 2>/dev/null
			kill -KILL "$pid" 2>/dev/null
			return 124
		fi
		sleep 0.2
	done
	wait "$pid"
}
