#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs last (the Makefile puts it there): the kernel log of this suite run
# must show no kernel bug (BUG:, WARNING:, KASAN, lockdep, Oops, hung task...).
# run_all.sh marks where a run starts; without a mark the whole log counts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

echo "TAP version 13"
echo "1..1"
if bad=$(klog_clean_since "suite begin" 2>&1); then
	echo "ok 1 kernel log clean"
	exit 0
fi
echo "# the kernel log shows a kernel bug:"
printf '%s\n' "$bad" | tap_diag
echo "not ok 1 kernel log clean"
exit 1
