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

KMAKE_TOOLS=(LLVM=-19 "RUSTC=$RUSTC" "HOSTRUSTC=$RUSTC" "BINDGEN=$BINDGEN")

log() { printf '\033[1m[rust_loop]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kernel_build_dir VARIANT -> the cached build folder for a config variant
# (debug = KASAN+lockdep for tests, bench = no debug options). The key covers
# everything that changes the output: source version, fragments, toolchain.
kernel_build_dir() {
	local variant=$1 src_version key
	src_version=$(cat "$CACHE_DIR/src/VERSION" 2>/dev/null || echo none)
	key=$( { echo "$src_version"; cat "$REPO_DIR/vm/config/common.config" \
		"$REPO_DIR/vm/config/$variant.config"; "$RUSTC" --version; clang-19 --version | head -1; } \
		| sha256sum | cut -c1-12)
	echo "$CACHE_DIR/build-$variant-$key"
}
