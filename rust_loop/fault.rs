// SPDX-License-Identifier: GPL-2.0

//! Per-device fault injection: `/sys/block/rloopN/loop/fault_inject`.
//!
//! loop.c has none; it is how generic/019-style tests drive rust_loop's own
//! error path. Write `off`, or `<ops> <after> <percent>`: `ops` is `read`,
//! `write` or `rw`; the next `after` matching requests succeed, then each
//! matching request fails with `BLK_STS_IOERR` with probability `percent`.
//! Reading shows the setting and how many failures were injected.

use crate::glue::{
    mq::ReqOp,
    random::random_u32, //
};
use core::{
    fmt::Write,
    sync::atomic::{
        AtomicU32,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    prelude::*,
    str::Formatter, //
};

const FAIL_READS: u32 = 1 << 0;
const FAIL_WRITES: u32 = 1 << 1;

pub(crate) struct FaultInjector {
    /// `FAIL_*` bits; 0 when off.
    ops: AtomicU32,
    /// Matching requests still to let through before failing.
    remaining: AtomicU64,
    percent: AtomicU32,
    injected: AtomicU64,
}

impl FaultInjector {
    pub(crate) const fn new() -> Self {
        Self {
            ops: AtomicU32::new(0),
            remaining: AtomicU64::new(0),
            percent: AtomicU32::new(100),
            injected: AtomicU64::new(0),
        }
    }

    /// Turns injection off (unbind).
    pub(crate) fn disarm(&self) {
        self.ops.store(0, Ordering::Release);
        self.injected.store(0, Ordering::Relaxed);
    }

    /// Decides whether this request fails.
    pub(crate) fn should_fail(&self, op: ReqOp) -> bool {
        let ops = self.ops.load(Ordering::Acquire);
        if ops == 0 {
            return false;
        }
        let bit = match op {
            ReqOp::Read => FAIL_READS,
            ReqOp::Write | ReqOp::Flush | ReqOp::Discard | ReqOp::WriteZeroes => FAIL_WRITES,
            ReqOp::Other => return false,
        };
        if ops & bit == 0 {
            return false;
        }
        let let_through = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if let_through {
            return false;
        }
        let fail = random_u32() % 100 < self.percent.load(Ordering::Relaxed);
        if fail {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    pub(crate) fn show(&self, out: &mut Formatter<'_>) -> Result {
        let ops = match self.ops.load(Ordering::Acquire) {
            0 => return writeln!(out, "off").map_err(|_| EINVAL),
            FAIL_READS => "read",
            FAIL_WRITES => "write",
            _ => "rw",
        };
        writeln!(
            out,
            "{} after={} percent={} injected={}",
            ops,
            self.remaining.load(Ordering::Relaxed),
            self.percent.load(Ordering::Relaxed),
            self.injected.load(Ordering::Relaxed)
        )
        .map_err(|_| EINVAL)
    }

    /// Parses `off` or `<read|write|rw> <after> <percent>`.
    pub(crate) fn configure(&self, input: &[u8]) -> Result {
        let text = core::str::from_utf8(input).map_err(|_| EINVAL)?;
        let mut words = text.split_ascii_whitespace();
        let ops = match words.next() {
            Some("off") if words.next().is_none() => {
                self.ops.store(0, Ordering::Release);
                return Ok(());
            }
            Some("read") => FAIL_READS,
            Some("write") => FAIL_WRITES,
            Some("rw") => FAIL_READS | FAIL_WRITES,
            _ => return Err(EINVAL),
        };
        let after: u64 = words.next().and_then(|w| w.parse().ok()).ok_or(EINVAL)?;
        let percent: u32 = words.next().and_then(|w| w.parse().ok()).ok_or(EINVAL)?;
        if !(1..=100).contains(&percent) || words.next().is_some() {
            return Err(EINVAL);
        }
        self.ops.store(0, Ordering::Release);
        self.remaining.store(after, Ordering::Relaxed);
        self.percent.store(percent, Ordering::Relaxed);
        self.injected.store(0, Ordering::Relaxed);
        self.ops.store(ops, Ordering::Release);
        Ok(())
    }
}
