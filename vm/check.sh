#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: build the selftests on the host, run them in the VM against
# one driver (rloop = rust_loop, loop = loop.c), and end with the summary
# line "N passed, N failed". A VM failure (timeout, panic, a kernel log line
# that shows a bug) counts as one more failed test.
#
#   vm/check.sh [rloop|loop]     STRESS_ITERATIONS=N for longer stress runs,
#                                CHECK_TESTS="x_test.sh ..." for some tests only
source "$(dirname "$0")/common.sh"

prefix=${1:-rloop}
build_selftests
run_selftests_in_vm "check-$prefix" 4000 \
	"$(guest_settings 'STRESS_ITERATIONS(_[a-z_]+)?=[0-9]*|CHECK_TESTS=[a-z0-9_. ]*')PREFIXES=$prefix $REPO_DIR/selftests/run_all.sh"
