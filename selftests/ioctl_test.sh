#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs the C test ioctl_test (kselftest_harness: every loop and control ioctl)
# against the driver under test, loaded and unloaded around it (lib.sh's
# run_c_test).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

run_c_test ioctl_test
