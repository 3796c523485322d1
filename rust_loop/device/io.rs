// SPDX-License-Identifier: GPL-2.0

//! Request execution: what `queue_rq` does with a request, and how a worker
//! runs it against the backing file. Nothing here changes the configuration:
//! the request path reads the binding lock-free from [`IoState`].

use super::{
    binding::{
        Binding,
        IoState, //
    },
    LoopDevice,
    State, //
};
use crate::glue::{
    self,
    file::{
        FALLOC_FL_KEEP_SIZE,
        FALLOC_FL_PUNCH_HOLE,
        FALLOC_FL_ZERO_RANGE, //
    },
    mq::{
        request::{
            error_status,
            BLK_STS_IOERR,
            BLK_STS_NOTSUPP,
            BLK_STS_OK, //
        },
        AsyncStart,
        BlkStatus,
        Dispatch,
        ReqOp,
        Request,
        RequestOutcome, //
    },
};
use kernel::{
    block::SECTOR_SIZE,
    prelude::*, //
};

/// Buffered writes larger than this run one at a time on the device's
/// ordered workqueue: the backing inode's lock serialises them anyway, and
/// parallel writers would only contend for it. Direct writes do not: ext4 and
/// xfs run aligned direct overwrites under a shared inode lock, in parallel.
const LARGE_BUFFERED_WRITE_BYTES: u64 = 64 * 1024;

impl LoopDevice {
    /// Decides, in the submitter's context, where a new request runs
    /// ([`glue::DiskOps::queue_rq`]).
    pub(super) fn dispatch(&self, io: &IoState, rq: &Request) -> Dispatch {
        if self.state() != State::Bound {
            return Dispatch::Fail;
        }
        if io.binding.is_none() {
            return Dispatch::Fail;
        }
        // Every request goes to a worker; nothing here touches the backing
        // file. `queue_rq` runs in the submitter's task, often inside its
        // `submit_bio` (`current->bio_list` set: a bio the backing file
        // system submitted here would only be dispatched after we return, so
        // waiting for it never ends) or under its plug, holding its locks and
        // its journal handle (`current->journal_info`: the lower ext4 would
        // take it for its own). Upstream loop.c tried an inline path in 6.19
        // and reverted it for exactly these reasons.
        if rq.op() == ReqOp::Write && !io.direct_io && rq.bytes() > LARGE_BUFFERED_WRITE_BYTES {
            Dispatch::DeferInOrder
        } else {
            Dispatch::Defer
        }
    }

    /// Runs a deferred request in a worker ([`glue::DiskOps::handle_request`]).
    pub(super) fn run_request(&self, io: &IoState, rq: &Request) -> RequestOutcome {
        let Some(binding) = io.binding.as_ref() else {
            rq.set_quiet();
            return RequestOutcome::Done(BLK_STS_IOERR);
        };
        let op = rq.op();
        // A request run again after its asynchronous try was counted then.
        if !rq.async_io_failed() && self.fault.should_fail(op) {
            return RequestOutcome::Done(BLK_STS_IOERR);
        }
        // Direct reads and writes go asynchronous, as loop.c's do: the worker
        // moves on while the disk works. Anything but the whole request (an
        // error, the end of the file, a short write) runs again below,
        // synchronously, which reports it.
        if goes_asynchronous(io, rq, op) {
            let write = op == ReqOp::Write;
            let start = file_position(binding, rq)
                .and_then(|pos| binding.file.start_direct_io(rq, pos, write));
            match start {
                Ok(AsyncStart::Queued(in_flight)) => return RequestOutcome::InFlight(in_flight),
                Ok(AsyncStart::Done(bytes)) if bytes as u64 == rq.bytes() => {
                    return RequestOutcome::Done(BLK_STS_OK)
                }
                _ => {}
            }
        }
        RequestOutcome::Done(self.run_synchronously(binding, io, rq, op))
    }

    /// Runs a request to its end in the worker and returns its status.
    fn run_synchronously(
        &self,
        binding: &Binding,
        io: &IoState,
        rq: &Request,
        op: ReqOp,
    ) -> BlkStatus {
        match execute(binding, io, rq, op) {
            Ok(()) => BLK_STS_OK,
            // As loop.c: reads and writes report the backing file's error
            // (ENOSPC stays ENOSPC for the writer); the others EIO, unless
            // the file does not support them.
            Err(e) if matches!(op, ReqOp::Read | ReqOp::Write) => error_status(e),
            Err(e) if e == glue::eopnotsupp() => {
                self.withdraw_unsupported(rq, op);
                BLK_STS_NOTSUPP
            }
            Err(_) => BLK_STS_IOERR,
        }
    }

    /// As loop.c (`lo_fallocate`): a backing file that turns out not to
    /// support a `fallocate` mode fails this request, and the device stops
    /// advertising what needs that mode until the next bind, so the block
    /// layer falls back (zero pages for write-zeroes) instead of failing
    /// every later request. Done in the worker before the request completes,
    /// so the submitter's fallback already sees it withdrawn. The block
    /// core's `blk_queue_disable_*` store needs no `limits_lock`, which a
    /// limits update that freezes the queue holds while it waits for this
    /// very request (loop.c takes it here, an XXX in its source).
    fn withdraw_unsupported(&self, rq: &Request, op: ReqOp) {
        match fallocate_mode(rq, op) {
            Some(mode) if mode & FALLOC_FL_ZERO_RANGE != 0 => self.disk.disable_write_zeroes(),
            Some(_) => self.disk.disable_discard(),
            None => {}
        }
    }
}

/// Whether a request starts as asynchronous direct I/O
/// ([`glue::BackingFile::start_direct_io`]) instead of running to its end in
/// the worker: a read or a write in direct-I/O mode (which `dispatch` never
/// orders, as a request that goes in flight must not be), unless an
/// asynchronous try of it already failed. Not a write the device must refuse
/// (read-only, see `execute`), nor a FUA write: its `fsync_range` must follow
/// the write's completion before the request ends, and sleeps, which the
/// completion's context may not.
fn goes_asynchronous(io: &IoState, rq: &Request, op: ReqOp) -> bool {
    if !io.direct_io || rq.async_io_failed() {
        return false;
    }
    match op {
        ReqOp::Read => true,
        ReqOp::Write => !io.read_only && !rq.is_fua(),
        _ => false,
    }
}

/// The `fallocate` mode (without `FALLOC_FL_KEEP_SIZE`) that serves a
/// discard or write-zeroes request: zeroing a range keeps its blocks
/// allocated only when the request asks for it (`REQ_NOUNMAP`).
fn fallocate_mode(rq: &Request, op: ReqOp) -> Option<i32> {
    match op {
        ReqOp::Discard => Some(FALLOC_FL_PUNCH_HOLE),
        ReqOp::WriteZeroes if rq.no_unmap() => Some(FALLOC_FL_ZERO_RANGE),
        ReqOp::WriteZeroes => Some(FALLOC_FL_PUNCH_HOLE),
        _ => None,
    }
}

/// How far a read or write got.
enum Transfer {
    Complete,
    /// A read reached the end of the backing file (a file shrunk under the
    /// device) after this many bytes.
    EndOfFile(u64),
}

/// Reads or writes a whole request at the binding's offset, with one kiocb
/// over all its data. A short read goes on until the file returns no data
/// (network and FUSE files may return less than asked mid-file); a short
/// write is an error (loop.c counts it as a success and loses the rest).
fn transfer(binding: &Binding, rq: &Request, op: ReqOp, direct: bool) -> Result<Transfer> {
    let file = &binding.file;
    let pos = file_position(binding, rq)?;
    let write = op == ReqOp::Write;
    let mut data = rq.data(write)?;
    let mut done = 0;
    while done < data.len() {
        let at = pos.saturating_add(done as u64);
        let step = if write {
            file.write_from(&mut data, at, direct)?
        } else {
            file.read_into(&mut data, at, direct)?
        };
        done += step;
        if done == data.len() {
            break;
        }
        if write {
            return Err(EIO);
        }
        if step == 0 {
            // As loop.c: the sectors read complete, the rest reads as
            // zeroes and fails with EIO.
            data.zero_after(done);
            return Ok(Transfer::EndOfFile(done as u64));
        }
    }
    Ok(Transfer::Complete)
}

/// Where a data request starts in the backing file. Only requests that carry
/// a position may ask (a flush's sector is meaningless).
fn file_position(binding: &Binding, rq: &Request) -> Result<u64> {
    binding.offset.checked_add(rq.position()).ok_or(EIO)
}

/// Runs one request against the backing file, waiting as needed (worker).
fn execute(binding: &Binding, io: &IoState, rq: &Request, op: ReqOp) -> Result {
    let file = &binding.file;
    // The block layer lets writes to a read-only disk through (it only
    // warns): fail everything that would change the file, as loop.c does.
    if io.read_only && matches!(op, ReqOp::Write | ReqOp::Discard | ReqOp::WriteZeroes) {
        return Err(EIO);
    }
    match op {
        ReqOp::Read => match transfer(binding, rq, op, io.direct_io)? {
            Transfer::EndOfFile(valid_bytes) => {
                rq.end_leading_bytes(valid_bytes & !(u64::from(SECTOR_SIZE) - 1));
                Err(EIO)
            }
            Transfer::Complete => Ok(()),
        },
        ReqOp::Write => {
            transfer(binding, rq, op, io.direct_io)?;
            if rq.is_fua() {
                let pos = file_position(binding, rq)?;
                file.fsync_range(pos, pos.saturating_add(rq.bytes() - 1))?;
            }
            Ok(())
        }
        ReqOp::Flush => file.fsync(false),
        ReqOp::Discard | ReqOp::WriteZeroes => {
            let mode = fallocate_mode(rq, op).ok_or(EIO)?;
            let pos = file_position(binding, rq)?;
            file.fallocate(mode | FALLOC_FL_KEEP_SIZE, pos, rq.bytes())
        }
        ReqOp::Other => Err(glue::eopnotsupp()),
    }
}
