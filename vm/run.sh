#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boot the project's kernel under QEMU with virtme-ng and run one command in the
# guest, with the host's root filesystem (and so its losetup, mkfs, fio, and this
# repository) visible read-only over 9p.
#
#   vm/run.sh [--variant debug|bench] [--timeout SECONDS] [--disk SERIAL:SIZE]...
#             [--shell] -- 'guest command'
#
# --disk attaches an empty virtio-blk disk of SIZE (a sparse file in the cache
# folder, made anew for every boot, opened by QEMU with cache=none so that its
# I/O reaches the host's storage) that the guest finds by its serial in
# /sys/block/vdX/serial: real storage for backing files, where tmpfs is not.
# Exits non-zero when the command fails, the VM times out or panics, or the
# kernel log has a line that shows a kernel bug (see BAD_LOG_PATTERN).
# Only one VM runs at a time on this 2-core machine: callers queue on a lock.
source "$(dirname "$0")/common.sh"

# Lines that show a kernel bug: one list for the runner and the selftests.
BAD_LOG_PATTERN=$(grep -v "^#" "$REPO_DIR/selftests/bad_klog_pattern")

variant=debug timeout=1800 shell=0 disks=()
while (($#)); do
	case $1 in
	--variant) variant=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--disk) disks+=("$2"); shift 2 ;;
	--shell) shell=1; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done
guest_command=${*:-true}

BUILD=$(kernel_build_dir "$variant")
[[ -f "$BUILD/.build-complete" ]] || die "kernel ($variant) not built; run vm/build-kernel.sh $variant"
VNG="$CACHE_DIR/venv/bin/vng"
export PATH="$CACHE_DIR/venv/bin:$PATH"

# KVM on this machine kind (KVM-PVM) hangs stock kernels: use it only when a
# short probe boot proves it works, and remember the answer.
kvm_flag=--disable-kvm
if [[ -w /dev/kvm && "${RUST_LOOP_KVM:-probe}" != off ]]; then
	probe_file="$CACHE_DIR/kvm-works"
	if [[ ! -f "$probe_file" ]]; then
		if timeout 60 "$VNG" --run "$BUILD/arch/x86/boot/bzImage" --cpus 1 --memory 512M \
			--exec "echo kvm-probe-ok" </dev/null 2>/dev/null | grep -q kvm-probe-ok; then
			echo yes >"$probe_file"
		else
			echo no >"$probe_file"
		fi
	fi
	[[ $(cat "$probe_file") == yes ]] && kvm_flag=
fi

RESULTS=$(mktemp -d "$CACHE_DIR/vm-results.XXXXXX")
mkdir -p "$GUEST_OUT"
trap 'rm -rf "$RESULTS"' EXIT
exec 9>"$CACHE_DIR/vm.lock"
flock 9 || die "cannot take the VM lock"

# --force-9p: Debian 12's virtiofsd (QEMU's old C one) rejects the arguments
# virtme-ng gives it, and each failed try costs 3 s before the 9p fallback.
# --disable-microvm: the disks below are PCI devices.
vng_args=(--run "$BUILD/arch/x86/boot/bzImage" $kvm_flag --force-9p --disable-microvm --cpus 2 --memory 4G
	--rwdir "$RESULTS" --rwdir "$GUEST_OUT" --cwd "$REPO_DIR"
	# Nothing may load loop.ko behind our back: udev, static nodes and
	# block-major-7 autoloading all can. Comparisons insmod it explicitly.
	--append "modprobe.blacklist=loop log_buf_len=16M")

# Scratch disks: empty at every boot. vng's own --blk-disk cannot ask for
# cache=none, without which the host's page cache would stand in for the disk.
mkdir -p "$CACHE_DIR/disks"
for disk in "${disks[@]}"; do
	serial=${disk%%:*} size=${disk#*:}
	[[ $serial =~ ^[A-Za-z0-9_-]+$ && $size != "$disk" ]] || die "--disk wants SERIAL:SIZE, got '$disk'"
	image="$CACHE_DIR/disks/$serial.img"
	rm -f "$image" && truncate -s "$size" "$image"
	vng_args+=("--qemu-opts=-drive if=none,id=$serial,file=$image,format=raw,cache=none,aio=threads -device virtio-blk-pci,drive=$serial,serial=$serial")
done

if ((shell)); then
	"$VNG" "${vng_args[@]}" --exec "RESULTS=$RESULTS GUEST_OUT=$GUEST_OUT KBUILD_DIR=$BUILD REPO_DIR=$REPO_DIR $REPO_DIR/vm/guest-init.sh bash -i"
	exit $?
fi

start=$SECONDS
# One boot: the guest command's output streams live (and into console.log);
# the kernel console (boot messages, then only what is printed at emergency
# level: panics and oopses) and QEMU's own errors go to boot-console.log, so
# that a guest that dies before the command runs still says why.
boot_vm() {
	rm -f "$RESULTS/status" "$RESULTS/dmesg"
	set +e
	timeout -k 10 "$timeout" "$VNG" --verbose "${vng_args[@]}" --append loglevel=1 \
		--exec "RESULTS=$RESULTS GUEST_OUT=$GUEST_OUT KBUILD_DIR=$BUILD REPO_DIR=$REPO_DIR $REPO_DIR/vm/guest-init.sh $(printf '%q' "$guest_command")" \
		</dev/null 2>"$RESULTS/boot-console.log" | tee "$RESULTS/console.log"
	vng_status=${PIPESTATUS[0]}
	set -e
}

mkdir -p "$CACHE_DIR/logs"
boot_vm
# A guest that never reached the command (guest-init streams the kernel log
# first thing) tested nothing, and nothing of the project ran in it: the
# module is only ever loaded by the command. The boot itself failed: QEMU,
# the guest's init, or TCG's cross-CPU code patching (an "Oops: int3" in a
# static branch patched while the other vCPU ran it, seen once in early
# boot). Boot once more, loudly; a kernel that cannot boot fails twice.
if [[ ! -f "$RESULTS/dmesg" && $vng_status != 124 ]]; then
	log "the guest never reached the command (vng exit $vng_status); its console ended with:"
	tail -40 "$RESULTS/boot-console.log" >&2
	log "booting once more"
	cp -f "$RESULTS/boot-console.log" "$CACHE_DIR/logs/failed-boot-console.log"
	boot_vm
fi

status=1
if [[ -f "$RESULTS/status" ]]; then
	status=$(cat "$RESULTS/status")
elif ((vng_status == 124)); then
	log "VM timed out after ${timeout}s"
else
	log "VM ended without reporting a status (vng exit $vng_status); its console ended with:"
	tail -40 "$RESULTS/boot-console.log" >&2
fi
cp -f "$RESULTS/boot-console.log" "$CACHE_DIR/logs/last-boot-console.log"
kernel_logs=("$CACHE_DIR/logs/last-boot-console.log")
if [[ -f "$RESULTS/dmesg" ]]; then
	cp -f "$RESULTS/dmesg" "$CACHE_DIR/logs/last-dmesg.log"
	kernel_logs+=("$CACHE_DIR/logs/last-dmesg.log")
	# A log that does not start at boot lost lines: it cannot prove the run clean.
	if ! head -1 "$RESULTS/dmesg" | grep -q '^\[ *0\.0'; then
		log "the kernel log does not start at boot: lines were lost"
		status=1
	fi
fi
if grep -EHn "$BAD_LOG_PATTERN" "${kernel_logs[@]}" >"$RESULTS/bad-lines"; then
	log "kernel log shows a kernel bug; offending lines (full logs: ${kernel_logs[*]}):"
	head -50 "$RESULTS/bad-lines" >&2
	status=1
fi
log "VM finished in $((SECONDS - start)) s, status $status"
exit "$status"
