#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Configure and build the Linux 7.2 kernel for a variant (debug | bench) into a
# cache folder keyed by source version + config fragments + toolchain, so a
# second run rebuilds nothing. Prints the build folder on stdout.
source "$(dirname "$0")/common.sh"

variant=${1:-debug}
[[ -f "$REPO_DIR/vm/config/$variant.config" ]] || die "unknown kernel variant '$variant'"
SRC="$CACHE_DIR/src/linux"
[[ -f "$SRC/Makefile" ]] || die "no kernel source; run vm/setup-toolchain.sh"
BUILD=$(kernel_build_dir "$variant")

if [[ -f "$BUILD/.build-complete" ]]; then
	echo "$BUILD"
	exit 0
fi

mkdir -p "$BUILD"
KMAKE=(make -C "$SRC" O="$BUILD" "${KMAKE_TOOLS[@]}")

log "configuring the $variant kernel in $BUILD"
"${KMAKE[@]}" -s allnoconfig >/dev/null
fragments=("$REPO_DIR/vm/config/common.config" "$REPO_DIR/vm/config/$variant.config")
(cd "$BUILD" && "$SRC/scripts/kconfig/merge_config.sh" -m -O "$BUILD" .config "${fragments[@]}" >/dev/null)
"${KMAKE[@]}" -s olddefconfig >/dev/null

# Every option the fragments ask for must have survived olddefconfig.
dropped=0
while IFS= read -r line; do
	[[ "$line" =~ ^CONFIG_ ]] || continue
	name=${line%%=*} value=${line#*=}
	if [[ "$value" == n ]]; then
		grep -q "^$name=" "$BUILD/.config" && { log "config: $name is set, wanted n"; dropped=1; }
	else
		grep -qx "$line" "$BUILD/.config" || { log "config: wanted $line, got '$(grep "^$name=\|# $name " "$BUILD/.config")'"; dropped=1; }
	fi
done < <(cat "${fragments[@]}")
((dropped == 0)) || die "kernel config fragment not honoured (see above)"

jobs=$(($(nproc) + 1))
log "building the $variant kernel with -j$jobs (about 15 min on 2 cores; log: $BUILD/build.log)"
start=$SECONDS
# The full log goes to a file; the terminal gets one progress line per 500 objects.
if ! "${KMAKE[@]}" -j"$jobs" bzImage modules >"$BUILD/build.log" 2>&1 < /dev/null & then :; fi
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	sleep 30
	objects=$(grep -c '^  [A-Z]' "$BUILD/build.log" || true)
	log "kernel build ($variant): $objects steps, $(((SECONDS - start) / 60)) min elapsed"
done
if ! wait "$pid"; then
	tail -40 "$BUILD/build.log" >&2
	die "kernel build failed (full log: $BUILD/build.log)"
fi
touch "$BUILD/.build-complete"
log "kernel ($variant) built in $(((SECONDS - start) / 60)) min"
echo "$BUILD"
