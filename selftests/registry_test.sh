#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs the C test registry_test (kselftest_harness): device numbering with
# thousands of devices (REGISTRY_DEVICES, default 2000) against the driver under test:
# lib.mk's runner cannot load a module, so this wrapper loads it first and
# unloads it after. The harness's TAP is the output; a problem around it (load,
# unload, kernel log) is a diagnostic line plus a failing exit status.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

name=registry_test
klog_mark "begin $name"

# A module left behind by an interrupted earlier test was already reported there.
if driver_loaded && ! cleanup_driver; then
	echo "# $(driver_module_name) is loaded and cannot be unloaded"
	exit 1
fi
if ! other_driver_absent; then
	echo "# the other loop driver is loaded: block major 7 is taken"
	exit 1
fi
if ! load_driver; then
	echo "# cannot load $(driver_module_path)"
	exit 1
fi

status=0
"$BIN_DIR/$name" || status=1

# A failed run can leave thousands of devices, which the unload removes one
# by one: minutes under KASAN and TCG, beyond cleanup_driver's wait.
if ! cleanup_driver 2>/dev/null && ! wait_until 600 driver_unloaded; then
	echo "# cannot unload $(driver_module_name) after the test"
	status=1
fi
if ! bad=$(klog_clean_since "begin $name" 2>&1); then
	echo "# the kernel log shows a bug during $name:"
	printf '%s\n' "$bad" | tap_diag
	status=1
fi
exit "$status"
