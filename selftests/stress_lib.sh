# shellcheck shell=bash
# Shared helpers for the stress_*_test.sh scripts; sourced after lib.sh.
#
# A stress test calls stress_init, does its work, and ends with
# stress_finish pass|fail|skip MESSAGE. stress_finish runs the test's own
# stress_cleanup function (if it defines one), unloads the driver if
# stress_init loaded it, checks the kernel log written since stress_init,
# then prints the one-test TAP result and exits with the kselftest code.

STRESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4
# Kernel log lines that show a kernel bug (the same list as vm/run.sh).
STRESS_BAD_LOG='BUG:|WARNING:|KASAN|possible circular locking|Oops|blocked for more than|Kernel panic|general protection fault|UBSAN|rust_panic|panicked at'

STRESS_NAME=$(basename "$0" .sh)
STRESS_WORK=
STRESS_LOADED_DRIVER=0
STRESS_LOG_MARK=
STRESS_START=$SECONDS

# stress_iterations DEFAULT -> $STRESS_ITERATIONS if set, else DEFAULT.
stress_iterations() { echo "${STRESS_ITERATIONS:-$1}"; }

stress_note() { printf '# %s\n' "$*"; }

# stress_tool NAME -> path of the helper built from tools/NAME.c. It sits next
# to the scripts for an in-tree build and for `make run_tests` (which copies the
# scripts into $OUTPUT); a script run straight from the read-only repository in
# the VM finds it in $OUTPUT or in $GUEST_OUT/selftests.
stress_tool() {
	local dir
	for dir in "$STRESS_DIR" "${OUTPUT:-}" "${GUEST_OUT:+$GUEST_OUT/selftests}"; do
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
	if [[ ! -d /sys/module/$(driver_module_name) ]]; then
		load_driver || stress_finish fail "cannot load $(driver_module_name)"
		STRESS_LOADED_DRIVER=1
	fi
	STRESS_WORK=$(mktemp -d "$SCRATCH/$STRESS_NAME.XXXXXX") ||
		stress_finish fail "cannot create a work folder in $SCRATCH"
	STRESS_LOG_MARK="stress-mark: $STRESS_NAME $$ $RANDOM"
	echo "$STRESS_LOG_MARK" >/dev/kmsg
}

# stress_finish pass|fail|skip MESSAGE
stress_finish() {
	local result=$1 message=$2 log bad line
	trap - EXIT
	if declare -F stress_cleanup >/dev/null; then
		stress_cleanup || { result=fail; message+="; cleanup failed"; }
	fi
	if ((STRESS_LOADED_DRIVER)); then
		unload_driver || { result=fail; message+="; rmmod $(driver_module_name) failed"; }
	fi
	[[ -n $STRESS_WORK ]] && rm -rf "$STRESS_WORK"
	if [[ -n $STRESS_LOG_MARK ]]; then
		# All of the log if the mark has already rotated out.
		log=$(dmesg)
		if grep -qF "$STRESS_LOG_MARK" <<<"$log"; then
			log=$(sed -n "/$STRESS_LOG_MARK/,\$p" <<<"$log")
		fi
		bad=$(grep -E "$STRESS_BAD_LOG" <<<"$log")
		if [[ -n $bad ]]; then
			result=fail
			message+="; kernel log shows a kernel bug"
			while IFS= read -r line; do stress_note "dmesg: $line"; done <<<"$bad"
		fi
	fi
	stress_note "$STRESS_NAME took $((SECONDS - STRESS_START)) s"
	case $result in
	pass) echo "ok 1 $STRESS_NAME # $message"; exit "$KSFT_PASS" ;;
	skip) echo "ok 1 $STRESS_NAME # SKIP $message"; exit "$KSFT_SKIP" ;;
	*) echo "not ok 1 $STRESS_NAME # $message"; exit "$KSFT_FAIL" ;;
	esac
}

# dev_name INDEX -> rloopN or loopN, the name in /sys/block.
dev_name() { echo "${LOOP_PREFIX}$1"; }

# is_bound NAME: the loop attributes exist only while a file is attached.
is_bound() { [[ -e /sys/block/$1/loop/backing_file ]]; }

# wait_unbound NAME SECONDS: LOOP_CLR_FD is lazy while other openers hold the
# device (it sets autoclear); wait for the last close to finish the detach.
wait_unbound() {
	local deadline=$((SECONDS + $2))
	while is_bound "$1"; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# bind_file DEVICE FILE [losetup options...]: attach FILE and check it worked
# (losetup only prints warnings for some failures).
bind_file() {
	local dev=$1 file=$2
	shift 2
	losetup "$@" "$dev" "$file" && is_bound "$(basename "$dev")"
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
