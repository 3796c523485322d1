# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Shared paths and toolchain settings for the vm/ scripts. Sourced, never run.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${RUST_LOOP_CACHE:-$HOME/.cache/rust-loop}"
KERNEL_SERIES=7.2

# The compilers the kernel and the module must share: Debian's rustc-web 1.96
# (rustup's copy first in PATH has no rust-src), LLVM 19 (KASAN + Rust needs clang).
RUSTC=/usr/bin/rustc
CLIPPY_DRIVER=/usr/bin/clippy-driver
RUSTFMT=/usr/bin/rustfmt
BINDGEN_ROOT="$CACHE_DIR/bindgen-0.72.1"
BINDGEN="$BINDGEN_ROOT/bin/bindgen"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

# The folder the guest may write to (the rest of the host is read-only
# there): test programs and results. One per checkout, so that two checkouts
# (a worktree beside the main one) never run each other's test programs.
GUEST_OUT="$CACHE_DIR/guest-out/$(printf '%s' "$REPO_DIR" | sha256sum | cut -c1-8)"

KMAKE_TOOLS=(LLVM=-19 "RUSTC=$RUSTC" "HOSTRUSTC=$RUSTC" "BINDGEN=$BINDGEN")

log() { printf '\033[1m[rust_loop]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kernel_build_dir VARIANT -> the cached build folder for a config variant
# (debug = KASAN+lockdep for tests, bench = no debug options). The key covers
# everything that changes the output: source version, the fragments' options
# (not their comments), toolchain.
kernel_build_dir() {
	local variant=$1 src_version key
	src_version=$(cat "$CACHE_DIR/src/VERSION" 2>/dev/null || echo none)
	key=$( { echo "$src_version"; grep -hEv '^[[:space:]]*(#|$)' "$REPO_DIR/vm/config/common.config" \
		"$REPO_DIR/vm/config/$variant.config"; "$RUSTC" --version; clang-19 --version | head -1; } \
		| sha256sum | cut -c1-12)
	echo "$CACHE_DIR/build-$variant-$key"
}

# build_selftests: the selftest programs, built on the host into the folder
# the guest can write to (the repository is read-only there).
build_selftests() {
	mkdir -p "$GUEST_OUT/selftests" "$CACHE_DIR/logs"
	make -s -C "$REPO_DIR/selftests" OUTPUT="$GUEST_OUT/selftests" \
		KSRC="$CACHE_DIR/src/linux" >/dev/null
}

# The scratch disk of the selftests (vm/run.sh --disk): backing files on ext4
# and xfs on a virtio-blk disk. The guest finds it by this serial.
SCRATCH_DISK_SERIAL=rloop-scratch
SCRATCH_DISK_SIZE=2G

# guest_settings REGEX: the host's environment settings that match REGEX
# (a whole "NAME=value" line), shell-quoted, to prefix a guest command with.
guest_settings() {
	local setting settings=()
	while IFS= read -r setting; do
		settings+=("$setting")
	done < <(env | grep -E "^($1)\$" || true)
	((${#settings[@]} == 0)) || printf '%q ' "${settings[@]}"
}

# run_selftests_in_vm NAME TIMEOUT 'GUEST COMMAND': runs a selftest runner in
# the VM, with the scratch disk attached, its TAP in logs/NAME.tap, counts
# again on the host so that a VM failure (timeout, panic, a kernel log line
# that shows a bug) is one more failed test, prints the summary line
# "N passed, N failed" and exits with the verdict.
run_selftests_in_vm() {
	local name=$1 timeout=$2 guest_command=$3 vm_status status
	local tap_log="$CACHE_DIR/logs/$name.tap"
	set +e
	"$REPO_DIR/vm/run.sh" --timeout "$timeout" --disk "$SCRATCH_DISK_SERIAL:$SCRATCH_DISK_SIZE" \
		-- "SCRATCH_DISK_SERIAL=$SCRATCH_DISK_SERIAL $guest_command" | tee "$tap_log"
	vm_status=${PIPESTATUS[0]}
	set -e
	if ((vm_status != 0)); then
		echo "not ok 1 - vm: the VM run failed (exit status $vm_status: failed test, timeout, panic or kernel log error)" >>"$tap_log"
	fi
	echo "# ==== summary ($name), VM status $vm_status; TAP log: $tap_log ===="
	"$REPO_DIR/selftests/summarize.sh" <"$tap_log" >"$tap_log.summary" && status=0 || status=1
	tail -n 2 "$tap_log.summary"
	exit "$status"
}
