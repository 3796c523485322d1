#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# kmemleak_check.sh MODULE...: after the suites, with every driver unloaded,
# asks kmemleak (CONFIG_DEBUG_KMEMLEAK, auto-scan off in the debug kernel) for
# a scan and fails on any leak report whose backtrace goes through one of
# MODULE (rust_loop, loop); reports that do not involve them (boot-time false
# positives, other subsystems) are counted and shown, not failed. TAP, one
# result. run_all.sh and run_fuzz.sh call it last.
#
# After the unload, the module's frames in a backtrace no longer resolve to
# symbols: kmemleak prints them as bare addresses. load_driver (lib.sh) notes
# the text range of every module it loads in $SCRATCH/module-text.log; a bare
# address inside a range of MODULE attributes the report to MODULE, and a
# bare module-space address in no recorded range (some other loader, e.g.
# a raw insmod) counts too: only the loop drivers come and go in a suite run.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

km=/sys/kernel/debug/kmemleak
out=$SCRATCH/kmemleak.report
echo "TAP version 13"
echo "1..1"
modules=("$@")
((${#modules[@]})) || { echo "usage: $0 MODULE..." >&2; exit 2; }
fail() { echo "# $1"; echo "not ok 1 kmemleak: no leak through ${modules[*]}"; exit 1; }
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug ||
	fail "cannot mount debugfs"
[[ -w $km ]] || fail "$km is missing: a kernel without CONFIG_DEBUG_KMEMLEAK?"
for m in "${modules[@]}"; do
	[[ ! -d /sys/module/$m ]] || fail "$m is still loaded: the scan must follow the last unload"
done

# kmemleak reports an object only when it is older than 5 s and was found
# unreferenced; two scans, as its documentation suggests, settle stragglers.
sleep 6
echo scan >"$km" && sleep 1 && echo scan >"$km" || fail "echo scan >$km failed"
cat "$km" >"$out" || fail "cannot read $km"

python3 - "$out" "$SCRATCH/module-text.log" "${modules[@]}" <<'EOF'
import re, sys
report, ranges_file, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
MODULE_SPACE = (0xffffffffa0000000, 0xffffffffff000000)  # x86_64 module area
INIT_TEXT_GUESS = 64 << 10   # the init text's size is not recorded
ranges = []                  # (module, start, end)
try:
    for line in open(ranges_file):
        name, start, size, init = line.split()[:4]
        ranges.append((name, int(start, 16), int(start, 16) + int(size)))
        if int(init, 16):
            ranges.append((name, int(init, 16), int(init, 16) + INIT_TEXT_GUESS))
except FileNotFoundError:
    pass
blocks = re.split(r"(?m)^(?=unreferenced object)", open(report).read())
blocks = [b for b in blocks if b.startswith("unreferenced object")]
ours, others = [], []
for b in blocks:
    why = set()
    for frame in re.findall(r"(?m)^    (\S.*)$", b.split("backtrace", 1)[-1]):
        for m in modules:
            if f"[{m}]" in frame:
                why.add(m)
        raw = re.fullmatch(r"0x([0-9a-f]+)", frame.strip())
        if raw:
            a = int(raw.group(1), 16)
            hit = {n for n, s, e in ranges if s <= a < e}
            if hit & set(modules):
                why |= hit & set(modules)
            elif not hit and MODULE_SPACE[0] <= a < MODULE_SPACE[1]:
                why.add("an unloaded module (no recorded range)")
    (ours if why else others).append((b, why))
print(f"# kmemleak: {len(blocks)} leak reports; {len(others)} not involving "
      f"{', '.join(modules)} (ignored), {len(ours)} through them")
for b, _ in others[:3]:
    print("# ignored: " + b.splitlines()[0])
for b, why in ours[:10]:
    print(f"# through {', '.join(sorted(why))}:")
    for line in b.splitlines():
        print("#   " + line)
sys.exit(1 if ours else 0)
EOF
status=$?
if ((status == 0)); then
	echo "ok 1 kmemleak: no leak through ${modules[*]}"
else
	echo "not ok 1 kmemleak: no leak through ${modules[*]} (full report: $out)"
fi
exit "$status"
