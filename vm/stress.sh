#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make stress`: the stress tests alone, for long runs, against rust_loop and
# then loop.c in one boot of the debug (KASAN + lockdep) kernel; ends with
# "N passed, N failed". A VM failure (timeout, panic, a kernel log line that
# shows a bug) counts as one more failed test.
#
#   STRESS_ITERATIONS=N          iterations (or rounds) of every stress test
#   STRESS_ITERATIONS_<name>=N   of one test: partscan, unbound_read,
#                                dio_vs_buffered, io_error, dio_truncate
#   PREFIXES="rloop loop"        the drivers, in order
#   STRESS_TIMEOUT=SECONDS       the whole VM run (default 4 hours)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

build_selftests

# Pass the iteration settings into the guest.
run_selftests_in_vm stress "${STRESS_TIMEOUT:-14400}" \
	"$(guest_settings '(STRESS_ITERATIONS(_[a-z_]+)?|PREFIXES)=[a-z0-9 ]*')$REPO_DIR/selftests/run_stress.sh"
