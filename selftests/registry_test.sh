#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs the C test registry_test (kselftest_harness): device numbering with
# thousands of devices (REGISTRY_DEVICES, default 2000) against the driver
# under test, loaded and unloaded around it (lib.sh's run_c_test). A failed
# run can leave thousands of devices, which the unload removes one by one:
# minutes under KASAN and TCG, beyond cleanup_driver's own wait.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

run_c_test registry_test 600
