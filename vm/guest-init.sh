#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the guest (started by vm/run.sh): prepares a scratch tmpfs,
# installs rust_loop's udev rules, checks
# that loop.ko did not sneak in, runs the command, then hands its status and
# the whole kernel log back to the host through the shared $RESULTS folder.
# The host keeps the guest's stderr for the kernel console: test output,
# errors included, goes to stdout in the order it was written.
exec 2>&1
mkdir -p /run/rust-loop && mount -t tmpfs -o size=1500M tmpfs /run/rust-loop
export SCRATCH=/run/rust-loop
export PATH="$PATH:/usr/sbin:/sbin"
# Stream the kernel log from boot on, so that a long run cannot lose lines to
# the ring buffer wrapping before the host checks them.
stdbuf -oL dmesg --follow >"$RESULTS/dmesg" &
dmesg_pid=$!
# rust_loop's udev rules (udev/60-rloop.rules): the guest sees the host's
# root read-only, and /run is its own tmpfs, which udevd reads rules from
# as from /etc/udev/rules.d.
mkdir -p /run/udev/rules.d
cp "$REPO_DIR/udev/60-rloop.rules" /run/udev/rules.d/
udevadm control --reload
if [[ -d /sys/module/loop ]]; then
	echo "guest-init: loop.ko is loaded before the test started" >&2
	status=1
else
	bash -c "$1"
	status=$?
fi
sleep 1 # let the follower catch up with the last lines
kill "$dmesg_pid"
wait "$dmesg_pid" 2>/dev/null
echo "$status" >"$RESULTS/status"
sync
exit "$status"
