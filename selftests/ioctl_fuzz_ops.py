# SPDX-License-Identifier: GPL-2.0
"""The operations of ioctl_fuzz.py: one random call each, recorded."""
import ctypes
import errno
import os
import struct
import time
import zlib

libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]
libc.ioctl.restype = ctypes.c_int
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mmap.restype = ctypes.c_void_p
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for _f in (libc.pread, libc.pwrite):
    _f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    _f.restype = ctypes.c_ssize_t


def sys_dir(prefix, n):
    return f"/sys/block/{prefix}{n}"


def existing(prefix):
    """The numbers of the driver's devices."""
    out = set()
    for name in os.listdir("/sys/block"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            out.add(int(name[len(prefix):]))
    return out


def bound(prefix, n):
    """The "loop" sysfs group exists only while the device is bound."""
    return os.path.isdir(sys_dir(prefix, n) + "/loop")

LOOP_SET_FD, LOOP_CLR_FD = 0x4C00, 0x4C01
LOOP_SET_STATUS, LOOP_GET_STATUS = 0x4C02, 0x4C03
LOOP_SET_STATUS64, LOOP_GET_STATUS64 = 0x4C04, 0x4C05
LOOP_CHANGE_FD, LOOP_SET_CAPACITY = 0x4C06, 0x4C07
LOOP_SET_DIRECT_IO, LOOP_SET_BLOCK_SIZE = 0x4C08, 0x4C09
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_ADD, LOOP_CTL_REMOVE, LOOP_CTL_GET_FREE = 0x4C80, 0x4C81, 0x4C82
# Generic block ioctls whose answers come from what the driver set up.
BLOCK_QUERIES = {"BLKGETSIZE64": (0x80081272, "Q"), "BLKSSZGET": (0x1268, "i"),
                 "BLKPBSZGET": (0x127B, "I"), "BLKIOMIN": (0x1278, "I"),
                 "BLKROGET": (0x125E, "i"), "BLKRRPART": (0x125F, None),
                 "BLKFLSBUF": (0x1261, None)}

# struct loop_info64 (232 bytes), loop_config (304), x86_64 loop_info (168).
INFO64 = "<QQQQQIIII64s64s32sQQ"
CONFIG = "<II"
INFO = "<i4xQQQiiii64s32sQQ4s4x"
U64 = (1 << 64) - 1

OFFSETS = [0, 0, 0, 512, 4096, 1000, 65536, 1 << 20, 3 << 20, 4 << 20,
           (1 << 63) - 1, 1 << 63, U64]
SIZELIMITS = [0, 0, 0, 0, 512, 100, 4096, 1 << 20, 2 << 20, 1 << 63, U64]
FLAGS = [0, 0, 1, 4, 8, 16, 4 | 8, 1 | 16, 1 | 4 | 8 | 16, 32, 2, 0x80000000]
BLOCK_SIZES = [0, 512, 1024, 2048, 4096, 8192, 65536, 131072, 256, 513,
               (1 << 32) | 512, U64]


class Ops:
    def __init__(self, fz):
        self.fz, self.r = fz, fz.rng
        self.buf = fz.mem            # pages 0-1: structures
        self.io = fz.mem + 2 * 4096  # pages 2-31: read/write data

    # ---- argument makers -------------------------------------------------
    def text(self, maxlen):
        n = self.r.randrange(maxlen + 1)
        return bytes(self.r.choice(b"abcdefghij/._-") for _ in range(n))

    def rand_bytes(self, n):
        return bytes(self.r.getrandbits(8) for _ in range(n))

    def info64(self):
        r = self.r
        if r.random() < 0.1:
            return self.rand_bytes(232)
        enc = 0 if r.random() < 0.9 else r.choice([1, 2, 18, r.getrandbits(32)])
        keysz = 0 if r.random() < 0.9 else r.choice([32, 33, r.getrandbits(32)])
        flags = r.choice(FLAGS) if r.random() < 0.95 else r.getrandbits(32)
        return struct.pack(INFO64, r.getrandbits(64), r.getrandbits(64), r.getrandbits(64),
                           r.choice(OFFSETS), r.choice(SIZELIMITS), r.getrandbits(8), enc,
                           keysz, flags, self.text(70), self.text(70), self.text(32),
                           r.getrandbits(64), r.getrandbits(64))

    def info_legacy(self):
        r = self.r
        if r.random() < 0.1:
            return self.rand_bytes(168)
        enc = 0 if r.random() < 0.9 else r.choice([1, 2, -1])
        keysz = 0 if r.random() < 0.9 else r.choice([32, 33, -1])
        off = r.choice([0, 0, 512, 4096, 1000, -1, -512, 0x7FFFFFFF])
        return struct.pack(INFO, r.getrandbits(31), r.getrandbits(64), r.getrandbits(64),
                           r.getrandbits(64), off, enc, keysz, r.choice(FLAGS) & 0x7FFFFFFF,
                           self.text(70), self.text(32), r.getrandbits(64),
                           r.getrandbits(64), self.rand_bytes(4))

    def pointer(self, data):
        """(label, address) of DATA in user memory, or a bad address."""
        r, fz = self.r, self.fz
        p = r.random()
        if p < 0.04:
            return "NULL", 0
        if p < 0.07:
            return "unmapped", 0x1000
        if p < 0.09:
            return "kernel", 0xFFFF888000000000
        if p < 0.13:
            # The structure's first 100 bytes, then a PROT_NONE page.
            ctypes.memmove(fz.guard - 100, data, 100)
            return "straddling", fz.guard - 100
        ctypes.memset(self.buf, 0xA5, 2 * 4096)
        ctypes.memmove(self.buf, data, len(data))
        return "ok", self.buf

    # ---- operations ------------------------------------------------------
    def random_op(self):
        r = self.r
        op = r.choices([self.open, self.close, self.dev_ioctl, self.ctl_ioctl,
                        self.rw, self.state], [10, 5, 50, 10, 15, 2])[0]
        op()

    def open(self):
        r, fz = self.r, self.fz
        k = r.randrange(len(fz.slots))
        if fz.slots[k] is not None:
            os.close(fz.slots[k][0])
            fz.slots[k] = None
        n = r.randrange(6) if r.random() < 0.9 else r.randrange(6, 10)
        via = "mknod" if r.random() < 0.15 else "dev"
        path = f"{fz.work}/node{n}" if via == "mknod" else f"/dev/{fz.prefix}{n}"
        acc, name = r.choice([(os.O_RDONLY, "RDONLY"), (os.O_RDWR, "RDWR"),
                              (os.O_WRONLY, "WRONLY")])
        flags, names = acc, [name]
        for bit, bname, prob in ((os.O_EXCL, "EXCL", 0.15), (os.O_NONBLOCK, "NONBLOCK", 0.1),
                                 (os.O_DIRECT, "DIRECT", 0.15)):
            if r.random() < prob:
                flags |= bit
                names.append(bname)
        what = f"open slot{k} {via}:{n} {'|'.join(names)}"
        try:
            fd = os.open(path, flags)
        except OSError as e:
            return fz.result(what, -1, e.errno)
        fz.slots[k] = (fd, n, "|".join(names))
        fz.result(what, 0)

    def close(self):
        fz = self.fz
        k = self.r.randrange(len(fz.slots))
        if fz.slots[k] is not None:
            n = fz.slots[k][1]
            os.close(fz.slots[k][0])
            fz.slots[k] = None
            fz.rec(f"close slot{k}")
            # The last close of an autoclear device unbinds it.
            self.state(n)

    def pick_slot(self):
        open_slots = [k for k, s in enumerate(self.fz.slots) if s is not None]
        if not open_slots:
            self.open()
            return None
        return self.r.choice(open_slots)

    def dev_ioctl(self):
        r, fz = self.r, self.fz
        k = self.pick_slot()
        if k is None:
            return
        fd, n, _ = fz.slots[k]
        who = f"slot{k}(dev{n})"
        cmd = r.choice(["SET_FD", "SET_FD", "CONFIGURE", "CONFIGURE", "CLR_FD", "CLR_FD",
                        "SET_STATUS64", "SET_STATUS64", "GET_STATUS64", "GET_STATUS64",
                        "SET_STATUS", "GET_STATUS", "CHANGE_FD", "SET_CAPACITY",
                        "SET_DIRECT_IO", "SET_BLOCK_SIZE", "unknown", "query"])
        changes = True
        if cmd in ("SET_FD", "CHANGE_FD"):
            label, arg = fz.fd_arg()
            number = LOOP_SET_FD if cmd == "SET_FD" else LOOP_CHANGE_FD
            rv, err = fz.ioctl(fd, number, arg)
            fz.result(f"{who} {cmd} {label}", rv, err)
        elif cmd == "CONFIGURE":
            label, cfd = fz.fd_arg()
            bs = r.choice(BLOCK_SIZES) & 0xFFFFFFFF
            data = struct.pack(CONFIG, cfd & 0xFFFFFFFF, bs) + self.info64() + \
                struct.pack("<8Q", *([0] * 8 if r.random() < 0.8 else
                                     [r.getrandbits(64) for _ in range(8)]))
            plabel, ptr = self.pointer(data)
            rv, err = fz.ioctl(fd, LOOP_CONFIGURE, ptr)
            fz.result(f"{who} CONFIGURE ptr={plabel} fd={label} bs={bs} "
                      f"info={data[8:240].hex()[48:112]}", rv, err)
        elif cmd in ("CLR_FD", "SET_CAPACITY"):
            number = LOOP_CLR_FD if cmd == "CLR_FD" else LOOP_SET_CAPACITY
            rv, err = fz.ioctl(fd, number, r.choice([0, r.getrandbits(64)]))
            fz.result(f"{who} {cmd}", rv, err)
        elif cmd in ("SET_STATUS64", "SET_STATUS"):
            data = self.info64() if cmd == "SET_STATUS64" else self.info_legacy()
            plabel, ptr = self.pointer(data)
            if self.excl_elsewhere(k, n):
                # Deliberate difference (README): with another opener holding
                # the device exclusively, rust_loop refuses a new offset or
                # size limit (EBUSY), loop.c 7.2 applies it. Skipped in both.
                return fz.rec(f"{who} {cmd} skipped (dev{n} is held O_EXCL elsewhere)")
            number = LOOP_SET_STATUS64 if cmd == "SET_STATUS64" else LOOP_SET_STATUS
            rv, err = fz.ioctl(fd, number, ptr)
            fz.result(f"{who} {cmd} ptr={plabel} {data[24:56].hex()}", rv, err)
        elif cmd in ("GET_STATUS64", "GET_STATUS"):
            changes = False
            size = 232 if cmd == "GET_STATUS64" else 168
            plabel, ptr = self.pointer(b"\xa5" * size)
            number = LOOP_GET_STATUS64 if cmd == "GET_STATUS64" else LOOP_GET_STATUS
            rv, err = fz.ioctl(fd, number, ptr)
            extra = ""
            if rv >= 0 and plabel == "ok":
                raw = ctypes.string_at(ptr, size)
                extra = " " + (fz.normalise_info64(raw) if size == 232 else
                               self.normalise_info(raw))
            fz.result(f"{who} {cmd} ptr={plabel}", rv, err, extra)
        elif cmd == "SET_DIRECT_IO":
            arg = r.choice([0, 1, 2, 1 << 32])
            rv, err = fz.ioctl(fd, LOOP_SET_DIRECT_IO, arg)
            fz.result(f"{who} SET_DIRECT_IO {arg:#x}", rv, err)
        elif cmd == "SET_BLOCK_SIZE":
            arg = r.choice(BLOCK_SIZES)
            if arg >= 1 << 32 and "blocksize64" in fz.tolerate:
                # Divergence (reported, not deliberate): loop.c keeps the
                # low 32 bits (2^32+512 sets 512), rust_loop says EINVAL.
                return fz.rec(f"{who} SET_BLOCK_SIZE {arg:#x} skipped (FUZZ_TOLERATE)")
            rv, err = fz.ioctl(fd, LOOP_SET_BLOCK_SIZE, arg)
            fz.result(f"{who} SET_BLOCK_SIZE {arg:#x}", rv, err)
        elif cmd == "unknown":
            number = r.choice([0x4C0B, 0x4C7F, LOOP_CTL_ADD, LOOP_CTL_GET_FREE])
            rv, err = fz.ioctl(fd, number, r.randrange(4))
            fz.result(f"{who} ioctl {number:#x}", rv, err)
        else:
            changes = False
            name = r.choice(sorted(BLOCK_QUERIES))
            number, fmt = BLOCK_QUERIES[name]
            ctypes.memset(self.buf, 0, 16)
            rv, err = fz.ioctl(fd, number, self.buf if fmt else 0)
            extra = ""
            if rv >= 0 and fmt:
                extra = " value=%d" % struct.unpack("<" + fmt, ctypes.string_at(
                    self.buf, struct.calcsize(fmt)))[0]
            fz.result(f"{who} {name}", rv, err, extra)
        if changes and rv >= 0:
            fz.state(n)

    def excl_elsewhere(self, k, n):
        """Whether device n is held exclusively by someone other than slot k:
        an O_EXCL slot, or an O_EXCL file a binding still holds after its
        slot was closed. Probed with an O_EXCL open of our own node."""
        fz = self.fz
        if "EXCL" in fz.slots[k][2].split("|"):
            return False
        try:
            os.close(os.open(f"{fz.work}/node{n}", os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK))
        except OSError as e:
            return e.errno == errno.EBUSY
        return False

    def normalise_info(self, raw):
        f = list(struct.unpack(INFO, raw))
        label = self.fz.label_by_encoded(f[1], f[2])
        rdev = f[3]
        f[1:4] = [f"backing={label}", f"{os.major(rdev)}:{os.minor(rdev)}" if rdev else 0]
        return " ".join(str(x) for x in f)

    def ctl_ioctl(self):
        r, fz = self.r, self.fz
        cmd = r.choice(["ADD", "ADD", "REMOVE", "REMOVE", "REMOVE", "GET_FREE", "GET_FREE",
                        "unknown"])
        n = r.randrange(10) if r.random() < 0.85 else r.choice(
            [U64, 0x80000000, 0x7FFFFFFF, 1 << 20, (1 << 32) + 2])
        if cmd == "ADD":
            rv, err = fz.ioctl(fz.ctl, LOOP_CTL_ADD, n)
            fz.result(f"ctl ADD {n:#x}", rv, err)
        elif cmd == "REMOVE":
            rv, err = fz.ioctl(fz.ctl, LOOP_CTL_REMOVE, n)
            fz.result(f"ctl REMOVE {n:#x}", rv, err)
        elif cmd == "GET_FREE":
            self.get_free(n)
        else:
            number = r.choice([0x4C83, LOOP_SET_FD, LOOP_GET_STATUS64, 0x1234])
            rv, err = fz.ioctl(fz.ctl, number, n)
            fz.result(f"ctl ioctl {number:#x}", rv, err)
        if cmd != "unknown" and 0 <= n < 10:
            fz.state(n)

    def get_free(self, arg):
        # README, "Differences from loop.c": rust_loop holds the device
        # GET_FREE hands out for 2 s, so a second GET_FREE within 2 s gets
        # another device (maybe a new one) where loop.c returns the same one.
        # Normalised: record only that the answer is an unbound device, and
        # remove a device GET_FREE created although an unbound one existed
        # before (loop.c would not have created it).
        fz, p = self.fz, self.fz.prefix
        before = existing(p)
        unbound_before = [m for m in before if not bound(p, m)]
        rv, err = fz.ioctl(fz.ctl, LOOP_CTL_GET_FREE, arg)
        if rv < 0:
            return fz.result("ctl GET_FREE", rv, err)
        fz.result("ctl GET_FREE", 0, 0, f" (normalised: unbound={not bound(p, rv)})")
        if rv not in before and unbound_before and fz.trace:
            deadline = time.time() + 5
            while fz.ioctl(fz.ctl, LOOP_CTL_REMOVE, rv)[1] == errno.EBUSY and \
                    time.time() < deadline:
                time.sleep(0.05)

    def rw(self):
        r, fz = self.r, self.fz
        k = self.pick_slot()
        if k is None:
            return
        fd, n, _ = fz.slots[k]
        ctypes.memset(self.buf, 0, 8)
        size = 0
        if fz.ioctl(fd, 0x80081272, self.buf)[0] == 0:
            size = struct.unpack("<Q", ctypes.string_at(self.buf, 8))[0]
        off = r.choice([0, 512, 4096, 100, max(size - 512, 0), size, size + 4096, 1 << 40])
        length = r.choice([512, 4096, 100, 65536])
        if r.random() < 0.4:
            data = fz.pattern(b"W%x" % r.getrandbits(20), length)
            ctypes.memmove(self.io, data, length)
            rv = libc_call("pwrite", fd, self.io, length, off)
            fz.result(f"slot{k}(dev{n}) pwrite off={off} len={length}", *rv)
            if rv[0] >= 0:
                try:
                    os.fsync(fd)
                    fz.result(f"slot{k}(dev{n}) fsync", 0)
                except OSError as e:
                    fz.result(f"slot{k}(dev{n}) fsync", -1, e.errno)
        else:
            ctypes.memset(self.io, 0, length)
            rv = libc_call("pread", fd, self.io, length, off)
            extra = ""
            if rv[0] > 0:
                extra = f" crc={zlib.crc32(ctypes.string_at(self.io, rv[0])):08x}"
            fz.result(f"slot{k}(dev{n}) pread off={off} len={length}", *rv, extra)

    def state(self, n=None):
        self.fz.state(self.r.randrange(6) if n is None else n)


def libc_call(name, fd, buf, length, off):
    rv = getattr(libc, name)(fd, buf, length, off)
    return (rv, ctypes.get_errno() if rv < 0 else 0)
