#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make fuzz`: the ioctl fuzzer alone, for long runs, in one boot of the debug
# (KASAN + lockdep + kmemleak) kernel: single-threaded differential runs
# (loop.c against rust_loop, same seeds) and multi-process chaos on each
# driver; ends with "N passed, N failed". A VM failure (timeout, panic, a
# kernel log line that shows a bug) counts as one more failed test.
#
#   FUZZ_ITERATIONS=N    operations per driver and mode (default 20000)
#   FUZZ_SEED=N          first seed (default: the time; printed)
#   FUZZ_WORKERS=N       chaos processes (default 4)
#   FUZZ_ROUND_OPS=N     differential operations per seed (default 2000)
#   FUZZ_TOLERATE=a,b    reported divergences to skip (see ioctl_fuzz_test.sh)
#   PREFIXES="rloop loop"  the drivers, in order (rloop runs the differential)
#   FUZZ_TIMEOUT=SECONDS the whole VM run (default 4 hours)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

build_selftests

run_selftests_in_vm fuzz "${FUZZ_TIMEOUT:-14400}" "$(guest_settings 'FUZZ_(ITERATIONS|SEED|WORKERS|ROUND_OPS)=[0-9]+|PREFIXES=[a-z ]*|FUZZ_TOLERATE=[a-z0-9_,]*')$REPO_DIR/selftests/run_fuzz.sh"
