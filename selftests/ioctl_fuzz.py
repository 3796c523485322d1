#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Differential ioctl fuzzer for loop drivers (rust_loop and loop.c).

From a seed, a random sequence of operations on a few devices and the
control node: every loop ioctl with valid and invalid arguments (bad fds,
directories, pipes, sockets, O_PATH fds, the device itself, another loop
device, random struct bytes, overflowing offsets and sizes, NULL, unmapped
and page-straddling pointers), opens with random flags (through /dev and
through private 7:N nodes, which create devices on open), reads, writes,
LOOP_CTL_ADD/REMOVE/GET_FREE. Runs as root inside the VM, stdlib only.

  ioctl_fuzz.py trace PREFIX WORK SEED OPS TRACE   one process, every call's
        result (normalised, see normalise_*) written to TRACE: the same seed
        on two drivers must give identical traces (diff them)
  ioctl_fuzz.py chaos PREFIX WORK SEED OPS WORKERS SECONDS   WORKERS
        processes at once on one driver; fails if one has not finished
        after SECONDS (its kernel stack is printed); the caller checks the
        kernel log
  ioctl_fuzz.py cleanup PREFIX   detach every device, re-create 0..7,
        remove the rest: the state right after loading the driver

The deliberate differences of README.md ("Differences from loop.c") that a
call can see are normalised where the call is recorded; each place says which.
"""
import ctypes
import errno
import os
import random
import socket
import stat
import struct
import sys
import time

from ioctl_fuzz_ops import (Ops, INFO64, LOOP_CTL_ADD, LOOP_CTL_REMOVE, LOOP_CLR_FD,
                             libc, sys_dir, existing, bound)

PAGE = 4096
NDEV = 6            # devices 0..5 are the usual targets
LOAD_DEVICES = 8    # both drivers create 0..7 at load (max_loop default)
SLOTS = 8           # device fds held open at once
FILE_SIZES = [0, 512, 4096, 65536 + 100, 1 << 20, 4 << 20]


class Fuzzer:
    def __init__(self, prefix, work, seed, trace=None):
        self.prefix, self.work, self.trace = prefix, work, trace
        self.rng = random.Random(seed)
        self.slots = [None] * SLOTS     # (fd, device number, flags text)
        self.labels = {}                # (st_dev, st_ino) -> label
        self.files = []                 # (label, fd, size)
        self.counts = {}
        # Divergences already reported, skipped to look for further ones
        # (comma-separated names; empty by default: every divergence fails).
        self.tolerate = set(filter(None, os.environ.get("FUZZ_TOLERATE", "").split(",")))
        os.makedirs(work, exist_ok=True)
        # Page-aligned scratch memory: 32 pages, then one PROT_NONE guard
        # page, so that an address just before it straddles into nothing.
        size = 33 * PAGE
        base = libc.mmap(None, size, 3, 0x22, -1, 0)  # RW, PRIVATE|ANON
        libc.mprotect(base + 32 * PAGE, PAGE, 0)
        self.mem, self.guard = base, base + 32 * PAGE
        self.ctl = os.open(f"/dev/{prefix}-control", os.O_RDWR)
        self.setup_files()
        self.ops = Ops(self)

    # ---- backing files and other fd arguments --------------------------
    def setup_files(self):
        for i, size in enumerate(FILE_SIZES):
            path = f"{self.work}/f{i}"
            with open(path, "wb") as f:
                f.write(self.pattern(b"F%d" % i, size))
            st = os.stat(path)
            self.labels[(st.st_dev, st.st_ino)] = f"f{i}"
            for mode, flags in (("ro", os.O_RDONLY), ("rw", os.O_RDWR),
                                ("dio", os.O_RDWR | os.O_DIRECT)):
                self.files.append((f"f{i}.{mode}", os.open(path, flags), size))
        mfd = os.memfd_create("fuzz")
        os.write(mfd, self.pattern(b"M", 1 << 20))
        st = os.fstat(mfd)
        self.labels[(st.st_dev, st.st_ino)] = "memfd"
        self.files.append(("memfd", mfd, 1 << 20))
        os.mkdir(f"{self.work}/dir")
        self.special = {"dir": os.open(f"{self.work}/dir", os.O_RDONLY),
                        "opath": os.open(f"{self.work}/f4", os.O_PATH),
                        "devnull": os.open("/dev/null", os.O_RDWR)}
        r, w = os.pipe()
        self.special.update(pipe_r=r, pipe_w=w)
        a, b = socket.socketpair()
        self.sockets = (a, b)
        self.special["socket"] = a.fileno()
        for n in range(NDEV + 4):
            node = f"{self.work}/node{n}"
            os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, n))

    def label_devices(self):
        """Our own nodes' inode numbers differ between runs: label them."""
        for n in existing(self.prefix):
            for path, lab in ((f"/dev/{self.prefix}{n}", f"node:{n}"),
                              (f"{self.work}/node{n}", f"mknod:{n}")):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                self.labels[(st.st_dev, st.st_ino)] = lab

    @staticmethod
    def pattern(tag, size):
        # No 0x55 0xaa, no "EFI PART": never a partition table by chance.
        unit = tag + b"-fuzz-data\n"
        return (unit * (size // len(unit) + 1))[:size]

    def fd_arg(self):
        """A file descriptor argument: (label, value)."""
        r = self.rng
        kind = r.choice(["file"] * 6 + ["slot"] * 3 + ["special", "bad", "high"])
        if kind == "file":
            label, fd, _ = r.choice(self.files)
            return label, fd
        if kind == "slot":
            k = r.randrange(SLOTS)
            if self.slots[k] is None:
                return "closed-slot", 999
            return f"slot{k}(dev{self.slots[k][1]})", self.slots[k][0]
        if kind == "special":
            name = r.choice(sorted(self.special))
            return name, self.special[name]
        if kind == "bad":
            return r.choice([("fd-1", 0xFFFFFFFF), ("fd999", 999),
                             ("fd-big", 0x7FFFFFFF), ("fd-neg64", (1 << 64) - 1)])
        label, fd, _ = r.choice(self.files)
        return f"{label}+2^32", fd | (1 << 32)

    # ---- recording -------------------------------------------------------
    def rec(self, text):
        if self.trace:
            self.trace.write(text + "\n")

    def result(self, what, rv, err=0, extra=""):
        res = f"err {errno.errorcode.get(err, err)}" if rv < 0 else f"ok {rv}"
        words = what.split()
        op = words[1] if words[0].startswith(("slot", "ctl")) else words[0]
        key = f"{op}:{'ok' if rv >= 0 else res.split()[1]}"
        self.counts[key] = self.counts.get(key, 0) + 1
        self.rec(f"{what} => {res}{extra}")
        return rv

    def ioctl(self, fd, cmd, arg):
        rv = libc.ioctl(fd, cmd, arg)
        return (rv, ctypes.get_errno() if rv < 0 else 0)

    def normalise_info64(self, raw):
        f = list(struct.unpack(INFO64, raw))
        dev, ino, rdev = f[0], f[1], f[2]
        f[0] = f[1] = None
        label = self.label_by_encoded(dev, ino)
        f[2] = f"{os.major(rdev)}:{os.minor(rdev)}" if rdev else 0
        return f"backing={label} " + " ".join(str(x) for x in f[2:])

    def label_by_encoded(self, dev, ino):
        """lo_device is the kernel's huge_encode_dev(st_dev), not glibc's."""
        for (d, i), lab in self.labels.items():
            enc = (os.minor(d) & 0xff) | (os.major(d) << 8) | ((os.minor(d) & ~0xff) << 12)
            if i == ino and enc == dev:
                return lab
        return "unknown-backing"

    def state(self, n):
        """The device's visible state after a call that may change it."""
        d = sys_dir(self.prefix, n)
        if not os.path.isdir(d):
            return self.rec(f"  state dev{n}: absent")
        vals = []
        for attr in ("loop/backing_file", "loop/offset", "loop/sizelimit",
                     "loop/autoclear", "loop/partscan", "loop/dio", "ro", "size",
                     "queue/logical_block_size", "queue/physical_block_size",
                     "queue/minimum_io_size", "queue/rotational",
                     "queue/write_cache", "queue/discard_max_bytes"):
            try:
                with open(f"{d}/{attr}") as f:
                    v = f.read().strip()
            except OSError as e:
                v = "-" + errno.errorcode.get(e.errno, str(e.errno))
            v = v.replace(self.work, "WORK").replace(f"/dev/{self.prefix}", "/dev/LOOP")
            vals.append(f"{attr.split('/')[-1]}={v}")
        backing = vals[0].split("=", 1)[1]
        if backing == "-ENOENT":
            # README, deliberate difference: loop.c keeps the write cache
            # and discard limits of the last binding on an unbound device
            # ("write back", 4294966784); rust_loop resets them ("write
            # through", 0), as its capacity is 0 anyway.
            vals[-2:] = ["write_cache, discard_max_bytes: (not compared: unbound)"]
        if backing.startswith("/dev/LOOP") or "node" in backing:
            # README: "Discard is offered for regular backing files only."
            vals[-1] = "discard_max_bytes=(not compared: block device backing)"
        self.rec(f"  state dev{n}: " + " ".join(vals))

    # ---- the run ---------------------------------------------------------
    def run(self, count):
        for i in range(count):
            self.label_devices()
            self.rec(f"#{i}")
            self.ops.random_op()

    def close_all(self):
        for k, s in enumerate(self.slots):
            if s is not None:
                os.close(s[0])
                self.slots[k] = None


def cleanup(prefix):
    """Back to the state after load: 0..7 unbound, nothing else."""
    ctl = os.open(f"/dev/{prefix}-control", os.O_RDWR)
    deadline = time.time() + 30
    for n in sorted(existing(prefix)):
        if bound(prefix, n):
            try:
                fd = os.open(f"/dev/{prefix}{n}", os.O_RDONLY)
                libc.ioctl(fd, LOOP_CLR_FD, 0)
                os.close(fd)
            except OSError:
                pass
    left = set()
    for n in sorted(existing(prefix)):
        while bound(prefix, n) and time.time() < deadline:
            time.sleep(0.1)
        if n >= LOAD_DEVICES:
            while libc.ioctl(ctl, LOOP_CTL_REMOVE, n) < 0:
                if ctypes.get_errno() != errno.EBUSY or time.time() > deadline:
                    left.add(n)
                    break
                time.sleep(0.1)
    for n in range(LOAD_DEVICES):
        if n not in existing(prefix):
            libc.ioctl(ctl, LOOP_CTL_ADD, n)
    os.close(ctl)
    still = sorted(n for n in existing(prefix) if bound(prefix, n)) + sorted(left)
    if still:
        print(f"cleanup: devices still bound or not removable: {still}", file=sys.stderr)
        return 1
    return 0


def chaos(prefix, work, seed, ops, workers, seconds):
    pids = {}
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                fz = Fuzzer(prefix, f"{work}/w{w}", seed * 1000 + w)
                fz.run(ops)
                fz.close_all()
            except Exception as e:  # a bug in the fuzzer, not the driver
                print(f"worker {w}: {e!r}", file=sys.stderr)
                code = 2
            os._exit(code)
        pids[pid] = w
    deadline, status = time.time() + seconds, 0
    while pids and time.time() < deadline:
        pid, st = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.2)
            continue
        if os.waitstatus_to_exitcode(st) != 0:
            print(f"worker {pids[pid]} failed: status {st}", file=sys.stderr)
            status = 1
        del pids[pid]
    for pid, w in pids.items():
        print(f"worker {w} (pid {pid}) still running after {seconds}s; kernel stack:",
              file=sys.stderr)
        try:
            with open(f"/proc/{pid}/stack") as f:
                sys.stderr.write(f.read())
        except OSError:
            pass
        os.kill(pid, 9)
        status = 1
    print(f"chaos: {workers} workers x {ops} operations, seed {seed}, "
          f"{'all finished' if status == 0 else 'FAILED'}")
    return status


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "trace" and len(argv) == 7:
        prefix, work, seed, ops, path = argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6]
        with open(path, "w") as trace:
            fz = Fuzzer(prefix, work, seed, trace)
            fz.run(ops)
            fz.close_all()
        summary = " ".join(f"{k}:{v}" for k, v in sorted(fz.counts.items()))
        print(f"trace: {ops} operations, seed {seed}, prefix {prefix}; results {summary}")
        return 0
    if mode == "chaos" and len(argv) == 8:
        return chaos(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), int(argv[7]))
    if mode == "cleanup" and len(argv) == 3:
        return cleanup(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
