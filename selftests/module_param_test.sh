#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Module parameters out of range: insmod fails cleanly (no panic), with a
# kernel log line naming the parameter, and nothing stays loaded.
# max_part=2147483648 (2^31) is the value whose 32-bit partition shift
# overflowed in rust_loop; rust_loop's max_part is a u32 and init rejects it
# with EINVAL. loop.c's max_part is an int, so the module loader rejects the
# value (ERANGE) before loop_init runs: each driver's own behaviour is checked.
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

check "$module is not loaded before the test" driver_unloaded
require "the other loop driver is not loaded" other_driver_absent
if [[ $LOOP_PREFIX == rloop ]]; then
	check "max_part=2147483648: insmod fails with EINVAL and logs why" \
		insmod_rejected "Invalid parameters" "rust_loop: invalid max_part=2147483648" \
		max_part=2147483648
else
	check "loop.c: max_part=2147483648 overflows its int parameter: insmod fails with ERANGE" \
		insmod_rejected "Numerical result out of range" "invalid for parameter \`max_part'" \
		max_part=2147483648
fi
require "load $module with default parameters" load_driver
check "unload $module" cleanup_driver
