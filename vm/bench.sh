#!/bin/bash
# `make bench`: rust_loop against loop.c on the non-debug kernel (benchmarks
# B1-B4 and B6-B8 of perf-anchors.md), in one VM boot, then a report.
#
#   vm/bench.sh          BENCH_REPS=N (rounds per driver, default 5),
#                        BENCH_RUNTIME=S (measured seconds per fio run, after a
#                        1 s ramp; default 4, >= 3)
#
# Builds (or waits for) the bench kernel, builds rust_loop.ko against it in
# the cache (never touching the repository's own build products), runs
# bench/guest-bench.sh in the VM, and writes results/bench-DATE/: results.md
# (the table, also printed), results.json, ratios.png, and the raw files.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

reps=${BENCH_REPS:-5}
runtime=${BENCH_RUNTIME:-4}
((runtime >= 3)) || die "BENCH_RUNTIME must be at least 3 s (the CPU sampler needs it)"

BUILD=$(kernel_build_dir bench)

# Another session may be building this very kernel folder right now; a second
# build in the same folder would break both. Its make (and its config steps)
# name the folder on their command line, and its log keeps growing.
build_running() {
	pgrep -f -- "O[= ]$BUILD( |$)" >/dev/null ||
		[[ -n $(find "$BUILD/build.log" -mmin -2 2>/dev/null) ]]
}
while [[ ! -f $BUILD/.build-complete ]] && build_running; do
	log "waiting for the bench kernel build running in $BUILD"
	sleep 30
done
"$REPO_DIR/vm/build-kernel.sh" bench >/dev/null

# rust_loop.ko for the bench kernel, built in a copy of the sources.
module_dir="$CACHE_DIR/bench-module"
mkdir -p "$module_dir"
rm -rf "$module_dir/rust_loop"
cp -a "$REPO_DIR/Kbuild" "$REPO_DIR/rust_loop.rs" "$REPO_DIR/rust_loop" "$module_dir/"
log "building rust_loop.ko against the bench kernel"
make -s -C "$BUILD" M="$module_dir" "${KMAKE_TOOLS[@]}" modules

bin_dir="$CACHE_DIR/bench-bin"
mkdir -p "$bin_dir"
cc -O2 -Wall -Wextra -Werror -pthread -o "$bin_dir/loop_setup_bench" "$REPO_DIR/bench/loop_setup_bench.c"

stamp=$(date +%Y%m%d-%H%M%S)
# The guest can write only to vm/run.sh's guest-out folder (and its tmpfs).
raw="$GUEST_OUT/bench-$stamp"
out="$REPO_DIR/results/bench-$stamp"
mkdir -p "$raw" "$out"
# Twice the expected time: 15 fio runs (runtime + ~2 s each) and ~15 s of
# setup benchmarks per driver round, 6 runs per raw round (one per four
# driver rounds). With the defaults that is about 20 minutes.
fio_seconds=$((runtime + 2))
timeout=$(((2 * reps * (15 * fio_seconds + 15) + (reps / 2 + 1) * 6 * fio_seconds) * 2 + 300))
log "running the benchmark VM: $reps rounds per driver, ${runtime} s per fio run (timeout ${timeout} s)"
set +e
"$REPO_DIR/vm/run.sh" --variant bench --timeout "$timeout" -- \
	"BENCH_OUT=$raw RUST_LOOP_KO=$module_dir/rust_loop.ko SETUP_BENCH=$bin_dir/loop_setup_bench BENCH_REPS=$reps BENCH_RUNTIME=$runtime $REPO_DIR/bench/guest-bench.sh" |
	tee "$out/console.log"
vm_status=${PIPESTATUS[0]}
set -e
cp -r "$raw" "$out/raw"
rm -rf "$raw"
((vm_status == 0)) || die "the benchmark VM failed (status $vm_status); console log and partial results in $out"

python3 "$REPO_DIR/bench/report.py" "$out/raw" "$out"
gnuplot -e "datafile='$out/ratios.dat'; outfile='$out/ratios.png'" "$REPO_DIR/bench/ratios.gp"
log "results: $out (results.md, results.json, ratios.png)"
