#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# O_DIRECT I/O through the device while its backing file is punched and truncated.
#
# dio_punch_race keeps 4 threads doing random O_DIRECT reads and writes on the
# device while it punches holes in the backing file, shrinks it and grows it
# back, STRESS_ITERATIONS times. Each request must complete with data or an
# error, nothing may hang (the run is time-bounded), the device must work
# again afterwards and the kernel log must stay clean. Runs with the device
# in buffered mode and in direct-I/O mode.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=stress_lib.sh
source "$(dirname "$0")/stress_lib.sh"

cycles=$(stress_iterations 500)
threads=4
time_limit=$((120 + cycles))
dev=$(loop_dev 0)

stress_cleanup() {
	if loop_bound 0; then losetup -d "$dev"; fi
	wait_loop_unbound 0
}

# run_mode buffered|direct: one bounded run; prints what happened.
run_mode() {
	local mode=$1 out=$STRESS_WORK/out.$1 status
	truncate -s 64M "$STRESS_WORK/backing"
	bind_file_in_mode 0 "$STRESS_WORK/backing" "$mode" || return 1
	run_bounded "$time_limit" "$tool" "$dev" "$STRESS_WORK/backing" "$cycles" "$threads" \
		>"$out" 2>"$out.err"
	status=$?
	head -20 "$out.err" | sed "s/^/$mode: /"
	((status == 124)) && echo "$mode: no end after $time_limit s"
	echo "$mode: $(cat "$out")"
	if ! detach_loop 0; then
		echo "$mode: detach failed"
		return 1
	fi
	rm -f "$STRESS_WORK/backing"
	return "$status"
}

stress_init
tool=$(stress_tool dio_punch_race) || stress_finish fail "dio_punch_race is not built"

failed=0 eio=0
for mode in buffered direct; do
	run_mode "$mode" >"$STRESS_WORK/log" || ((failed++))
	while IFS= read -r line; do stress_note "$line"; done <"$STRESS_WORK/log"
	e=$(tool_count "$STRESS_WORK/out.$mode" eio)
	eio=$((eio + ${e/\?/0}))
done

summary="$LOOP_PREFIX: $cycles punch/truncate cycles in buffered and direct-I/O mode,\
 $eio I/Os ended in EIO, $failed of 2 modes failed"
stress_note "$summary"
((failed == 0)) && stress_finish pass "$summary"
stress_finish fail "$summary"
