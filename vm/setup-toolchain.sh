#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install everything the project needs on a fresh Debian 12 machine, idempotently:
# Debian packages, the Linux 7.2 source (from trixie-backports, download only),
# bindgen 0.72.1 and virtme-ng. Quiet and fast when already done.
source "$(dirname "$0")/common.sh"

APT_PACKAGES=(
	# kernel build
	clang-19 lld-19 llvm-19 libclang-19-dev bc flex bison libelf-dev libssl-dev
	cpio kmod dwarves make xz-utils
	# Rust toolchain matching the kernel crate (1.96 with library source)
	rustc-web rust-web-src rust-web-clippy rustfmt-web cargo-web
	# VM and guest userland (the guest runs the host's binaries over 9p)
	qemu-system-x86 udev python3-venv busybox-static
	util-linux mount fdisk e2fsprogs xfsprogs fio gcc libc6-dev
	# benchmark chart
	gnuplot-nox
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel source: Debian's linux-source-7.2 lives only in trixie-backports.
# The suite is added with pin priority 1 so that nothing on the system is ever
# upgraded from it; we only `apt-get download` the source package and unpack it
# into the cache.
SRC_DIR="$CACHE_DIR/src"
if [[ ! -f "$SRC_DIR/linux/Makefile" ]]; then
	mkdir -p "$CACHE_DIR"
	if [[ ! -f /etc/apt/sources.list.d/rust-loop-trixie-backports.sources ]]; then
		log "adding trixie-backports (pinned to priority 1) to fetch linux-source-$KERNEL_SERIES"
		cat >/etc/apt/sources.list.d/rust-loop-trixie-backports.sources <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-trixie-automatic.gpg
SRC
		cat >/etc/apt/preferences.d/rust-loop-trixie-backports <<PIN
Package: *
Pin: release n=trixie-backports
Pin-Priority: 1
PIN
		apt-get update -qq
	fi
	rm -rf "$SRC_DIR.tmp" && mkdir -p "$SRC_DIR.tmp"
	log "downloading linux-source-$KERNEL_SERIES"
	(cd "$SRC_DIR.tmp" && apt-get download -qq "linux-source-$KERNEL_SERIES")
	dpkg -x "$SRC_DIR.tmp"/linux-source-*.deb "$SRC_DIR.tmp/pkg"
	log "unpacking the kernel tarball"
	tar -C "$SRC_DIR.tmp" -xf "$SRC_DIR.tmp"/pkg/usr/src/linux-source-$KERNEL_SERIES.tar.xz
	mv "$SRC_DIR.tmp/linux-source-$KERNEL_SERIES" "$SRC_DIR.tmp/linux"
	make -s -C "$SRC_DIR.tmp/linux" kernelversion >"$SRC_DIR.tmp/VERSION"
	rm -rf "$SRC_DIR.tmp/pkg" "$SRC_DIR.tmp"/*.deb "$SRC_DIR"
	mv "$SRC_DIR.tmp" "$SRC_DIR"
	log "kernel source $(cat "$SRC_DIR/VERSION") in $SRC_DIR/linux"
fi

if [[ ! -x "$BINDGEN" ]]; then
	log "building bindgen-cli 0.72.1 (about 2 minutes)"
	cargo install --quiet --locked bindgen-cli --version 0.72.1 --root "$BINDGEN_ROOT"
fi

VENV="$CACHE_DIR/venv"
if [[ ! -x "$VENV/bin/vng" ]]; then
	log "installing virtme-ng into $VENV"
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q virtme-ng==1.42
fi
