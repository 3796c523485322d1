// SPDX-License-Identifier: GPL-2.0

//! Asynchronous direct reads of a request: a `struct kiocb` in the request's
//! PDU whose `ki_complete` hands the request back to blk-mq, to be ended in
//! the disk's `->complete` (loop.c's `lo_rw_aio`). One worker thus keeps many
//! reads in flight instead of sleeping in each.
//!
//! Writes stay synchronous: an asynchronous write must end the file system's
//! freeze protection from its completion (`kiocb_end_write`), an inline
//! function of `fs.h` over the per-CPU rwsem's inline fast path, which a
//! module written in Rust cannot reach (no `rust/helpers` wrapper exists).
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use super::request::{
    Request,
    RequestPdu, //
};
use crate::glue::file::BackingFile;
use core::sync::atomic::{
    AtomicU32,
    Ordering, //
};
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_long,
        c_void, //
    },
    prelude::*,
};

/// The state of a request's asynchronous read, in its PDU.
#[repr(C)]
pub(crate) struct AsyncIo {
    kiocb: bindings::kiocb,
    /// The bvec table gathered for a request of several bios, kept until the
    /// read completes: the lower bios may use it as their own
    /// (`bio_iov_bvec_set`).
    gathered: Option<KVec<bindings::bio_vec>>,
    /// The bytes the read must return to have read the whole request.
    expected: usize,
    /// `ki_complete`'s result.
    result: c_long,
    /// An asynchronous read of this request did not read all of it: its work
    /// item runs the request again, synchronously.
    retry_sync: bool,
    /// Who still uses the kiocb: the submitter, until the file system's
    /// `read_iter` has returned (ext4 still reads `ki_filp` after queueing
    /// the I/O), and the completion. The last one completes the request
    /// (loop.c's `cmd->ref`).
    users: AtomicU32,
}

impl AsyncIo {
    /// The state of a request that has no asynchronous read.
    pub(in crate::glue) const fn idle() -> Self {
        Self {
            kiocb: pin_init::zeroed(),
            gathered: None,
            expected: 0,
            result: 0,
            retry_sync: false,
            users: AtomicU32::new(0),
        }
    }

    /// Drops one user of the kiocb; the last one hands the request to
    /// blk-mq's completion.
    ///
    /// # Safety
    ///
    /// `io` is the asynchronous I/O state of a request whose read was
    /// queued, and the caller is one of its two users, dropping its use once.
    unsafe fn put_user(io: *mut Self) {
        // SAFETY: The request is in flight until its last user is gone.
        if unsafe { (*io).users.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: `io` is the `async_io` field of a `RequestPdu`.
        let pdu = unsafe { kernel::container_of!(io, RequestPdu, async_io) };
        // SAFETY: `pdu` is the PDU of a started request.
        let rq = unsafe { bindings::blk_mq_rq_from_pdu(pdu.cast::<c_void>()) };
        // SAFETY: The request is started, not ended, and its completion is
        // ours to report: blk-mq calls the disk's `->complete` once.
        unsafe { bindings::blk_mq_complete_request(rq) };
    }

    /// A new request: no read of it has failed yet.
    pub(in crate::glue) fn start(&mut self) {
        self.retry_sync = false;
    }

    /// Takes the result of a completed read, frees what it needed, and says
    /// whether it read the whole request.
    pub(in crate::glue) fn finish(&mut self) -> bool {
        self.gathered = None;
        let whole = usize::try_from(self.result).is_ok_and(|read| read == self.expected);
        self.retry_sync = !whole;
        whole
    }
}

/// How a direct read started.
pub(crate) enum AsyncStart {
    /// In flight: the request ends when the read completes.
    Queued(IoInFlight),
    /// Done already, with this many bytes read.
    Done(usize),
}

/// Proof that a request's read is in flight, so that its work item must
/// neither end it nor touch it again: only the glue makes one.
pub(crate) struct IoInFlight(());

impl Request {
    /// An asynchronous read of this request came back short or failed: run
    /// it synchronously instead (the worker's second run of it).
    pub(crate) fn async_io_failed(&self) -> bool {
        // SAFETY: The driver owns the started request; its PDU is a
        // `RequestPdu`, written by the completion before it queued the work
        // item that now runs (`queue_work` orders the two).
        unsafe { (*self.pdu()).async_io.retry_sync }
    }
}

impl BackingFile {
    /// Starts reading the whole of `rq` from position `pos` with direct I/O
    /// and a completion callback. The caller runs with `PF_MEMALLOC_NOIO`
    /// (see [`Request::data`]).
    pub(crate) fn start_direct_read(&self, rq: &Request, pos: u64) -> Result<AsyncStart> {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let (mut iter, ioprio, expected, gathered) = rq.data(false)?.into_parts();
        let io = rq.pdu_async_io();
        // SAFETY: The driver owns the started request and its PDU; no read of
        // it is in flight (a request's work item starts at most one, and only
        // while no other runs). The table moves into the PDU before the read
        // starts, so the completion always finds it there; moving the vector
        // does not move the buffer `iter` points into.
        unsafe {
            let kiocb = &mut (*io).kiocb;
            *kiocb = pin_init::zeroed();
            kiocb.ki_filp = self.raw();
            kiocb.ki_flags = bindings::IOCB_DIRECT as c_int;
            kiocb.ki_pos = pos;
            kiocb.ki_ioprio = ioprio;
            kiocb.ki_complete = Some(read_complete);
            (*io).gathered = gathered;
            (*io).expected = expected;
            (*io).users.store(2, Ordering::SeqCst);
        }
        // SAFETY: `file` is valid while the binding holds it, and the binding
        // outlives the request (it left no I/O state yet); the kiocb lives in
        // the PDU until the request ends, which happens only after
        // `ki_complete` (or now, if the read does not queue); the iterator is
        // valid for the call and the pages it describes are pinned by the
        // request in flight.
        let ret =
            unsafe { bindings::vfs_iocb_iter_read(self.raw(), &raw mut (*io).kiocb, &mut iter) };
        if ret == -(bindings::EIOCBQUEUED as isize) {
            // SAFETY: Queued, and this is the submitter's one put. From here
            // on the request is the completion's (it may even have ended).
            unsafe { AsyncIo::put_user(io) };
            return Ok(AsyncStart::Queued(IoInFlight(())));
        }
        // SAFETY: The read did not queue: no completion runs for it, and the
        // PDU is ours again.
        unsafe { (*io).gathered = None };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(AsyncStart::Done(ret as usize))
    }
}

/// `ki_complete` of a request's read, called by the backing file system,
/// often in interrupt context: records the result; the request completes
/// once the submitter is done with the kiocb too (see `AsyncIo::users`).
///
/// # Safety
///
/// Only called once by the file system, for a kiocb that
/// [`BackingFile::start_direct_read`] queued.
unsafe extern "C" fn read_complete(kiocb: *mut bindings::kiocb, result: c_long) {
    // SAFETY: The kiocb is the one inside an `AsyncIo`, inside the PDU of
    // a request still in flight.
    let io = unsafe { kernel::container_of!(kiocb, AsyncIo, kiocb) };
    // SAFETY: As above; the submitter does not touch `result`.
    unsafe { (*io).result = result };
    // SAFETY: The read was queued; this is the completion's one put.
    unsafe { AsyncIo::put_user(io) };
}
