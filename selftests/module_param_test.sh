#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Module parameters out of range: insmod fails cleanly (no panic), with a
# kernel log line naming the parameter, and nothing stays loaded.
# max_part=2147483648 (2^31) is the value whose 32-bit partition shift
# overflowed in rust_loop; rust_loop's max_part is a u32 and init rejects it
# with EINVAL. loop.c's max_part is an int, so the module loader rejects the
# value (ERANGE) before loop_init runs: each driver's own behaviour is checked.
# drop_in (rust_loop): an invalid value is EINVAL (the kernel's bool parser),
# and drop-in mode refuses to load beside loop.ko (EBUSY, with a log line);
# the other way round, loop.c refuses to load beside rust_loop drop_in=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

tap_start module_param_test
module=$(driver_module_name)

# insmod_rejected ERROR LOG_PATTERN PARAM... : insmod with PARAM fails with
# ERROR (the text insmod prints for the errno: kmod says "Invalid
# parameters" for EINVAL), the module is not loaded, and the kernel log since
# the attempt has a line matching LOG_PATTERN.
insmod_rejected() {
	local error=$1 pattern=$2 mark out
	shift 2
	mark="insmod $module $*"
	klog_mark "$mark"
	if out=$(insmod "$(driver_module_path)" "$@" 2>&1); then
		echo "insmod $module $* succeeded" >&2
		cleanup_driver || true
		return 1
	fi
	[[ $out == *"$error"* ]] || { echo "insmod said '$out', want '$error'" >&2; return 1; }
	driver_unloaded || { echo "$module is loaded" >&2; return 1; }
	klog_since "$mark" | grep -qF -- "$pattern" || {
		echo "no kernel log line with '$pattern'; the log since the attempt:" >&2
		klog_since "$mark" | tail -5 >&2
		return 1
	}
}

# with_other_loaded PARAMS -- COMMAND...: COMMAND while the other loop
# driver is loaded (insmod with PARAMS), which is unloaded afterwards.
with_other_loaded() {
	local params=() status=0 other
	other=$(other_module_name)
	while [[ $1 != -- ]]; do params+=("$1"); shift; done
	shift
	insmod "$(module_path "$other")" "${params[@]}" || { echo "insmod $other failed" >&2; return 1; }
	"$@" || status=1
	udevadm settle 2>/dev/null || true
	rmmod "$other" || status=1
	return "$status"
}

# insmod_busy: insmod of the driver under test fails with EBUSY and leaves
# nothing loaded (loop.c logs nothing when its minor is taken).
insmod_busy() {
	local out
	if out=$(insmod "$(driver_module_path)" 2>&1); then
		echo "insmod $module succeeded" >&2
		rmmod "$module"
		return 1
	fi
	[[ $out == *"Device or resource busy"* ]] || { echo "insmod said '$out'" >&2; return 1; }
	driver_unloaded
}

check "$module is not loaded before the test" driver_unloaded
require "the other loop driver is not loaded" other_driver_absent
if [[ $LOOP_PREFIX == rloop ]]; then
	check "max_part=2147483648: insmod fails with EINVAL and logs why" \
		insmod_rejected "Invalid parameters" "rust_loop: invalid max_part=2147483648" \
		max_part=2147483648
	# drop_in is a C-style bool (param_ops_bool): kstrtobool refuses the rest.
	check "drop_in=banana: insmod fails with EINVAL" \
		insmod_rejected "Invalid parameters" "invalid for parameter \`drop_in'" \
		drop_in=banana
	check "drop_in=1 with a major other than 7: insmod fails with EINVAL and logs why" \
		insmod_rejected "Invalid parameters" "invalid major=0 with drop_in=1" \
		drop_in=1 major=0
	check "drop_in=1 while loop.ko is loaded: insmod fails with EBUSY and says why" \
		with_other_loaded -- insmod_rejected "Device or resource busy" \
		"rust_loop: drop_in=1: /dev/loop-control (misc minor 237) is taken: loop.ko is loaded" \
		drop_in=1
	check "drop_in=0 while loop.ko is loaded still loads (rloop names, dynamic major)" \
		with_other_loaded -- bash -c "insmod '$(driver_module_path)' drop_in=0 && test -c /dev/rloop-control && udevadm settle && rmmod rust_loop"
else
	check "loop.c: max_part=2147483648 overflows its int parameter: insmod fails with ERANGE" \
		insmod_rejected "Numerical result out of range" "invalid for parameter \`max_part'" \
		max_part=2147483648
	check "loop.c: insmod fails with EBUSY while rust_loop drop_in=1 is loaded" \
		with_other_loaded drop_in=1 -- insmod_busy
fi
require "load $module with default parameters" load_driver
check "unload $module" cleanup_driver
