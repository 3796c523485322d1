#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Reads the TAP of `make -C selftests run_tests` (one or more runs) on stdin,
# passes it through line by line, and ends with two lines:
#   N skipped
#   N passed, N failed
# Counting: a test's nested results ("# ok N ...", one level down) count one
# by one; a test without nested results counts once by its own line. A test
# whose own line says "not ok" although no nested result failed (a crash, a
# timeout, a failed cleanup or kernel log check) adds one failure, and so do
# "Bail out!" and a stream that stops inside a test. A SKIP is never a pass.
# Exit status: 0 only if nothing failed and something passed.
set -euo pipefail

passed=0 failed=0 skipped=0
# Nested results of the test whose own result line has not come yet.
npass=0 nfail=0 nskip=0

# is_skip REST: REST (what follows "ok N") carries a SKIP directive.
is_skip() { [[ ${1,,} =~ \#[[:space:]]*skip ]]; }
# is_xfail REST: kselftest's runner marks exit status 2 as "# XFAIL" on an
# "ok" line; none of our tests expects to fail (bash itself exits 2 on a
# script error), so it counts as a failure.
is_xfail() { [[ ${1,,} =~ \#[[:space:]]*x(fail|pass) ]]; }

while IFS= read -r line || [[ -n $line ]]; do
	printf '%s\n' "$line"
	if [[ $line =~ ^#\ (not\ )?ok\ [0-9]+(.*)$ ]]; then
		if [[ -n ${BASH_REMATCH[1]} ]]; then
			nfail=$((nfail + 1))
		elif is_skip "${BASH_REMATCH[2]}"; then
			nskip=$((nskip + 1))
		else
			npass=$((npass + 1))
		fi
	elif [[ $line =~ ^(not\ )?ok\ [0-9]+(.*)$ ]]; then
		not=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
		own_failure=false
		if [[ -n $not ]] || is_xfail "$rest"; then
			own_failure=true
		fi
		if ((npass + nfail + nskip > 0)); then
			passed=$((passed + npass)) failed=$((failed + nfail)) skipped=$((skipped + nskip))
			! $own_failure || ((nfail > 0)) || failed=$((failed + 1))
		elif $own_failure; then
			failed=$((failed + 1))
		elif is_skip "$rest"; then
			skipped=$((skipped + 1))
		else
			passed=$((passed + 1))
		fi
		npass=0 nfail=0 nskip=0
	elif [[ $line == "Bail out!"* ]]; then
		failed=$((failed + 1))
	fi
done

if ((npass + nfail + nskip > 0)); then
	echo "# the stream ended inside a test"
	passed=$((passed + npass)) failed=$((failed + nfail + 1)) skipped=$((skipped + nskip))
fi
echo "$skipped skipped"
echo "$passed passed, $failed failed"
((failed == 0 && passed > 0))
