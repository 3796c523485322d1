// SPDX-License-Identifier: GPL-2.0

//! A blk-mq request: its accessors, its bio and bvec iteration, its per-request
//! driver data, and its completion status.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use super::async_io::AsyncIo;
use core::{
    marker::PhantomData,
    mem::MaybeUninit,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    block::SECTOR_SHIFT,
    ffi::{
        c_uint,
        c_ulong, //
    },
    prelude::*,
};

/// `blk_status_t` (blk_types.h).
pub(crate) type BlkStatus = bindings::blk_status_t;
/// `BLK_STS_*` (blk_types.h): cast macros, only `BLK_STS_OK` is in the bindings.
pub(crate) const BLK_STS_OK: BlkStatus = bindings::BLK_STS_OK as BlkStatus;
pub(crate) const BLK_STS_NOTSUPP: BlkStatus = 1;
pub(crate) const BLK_STS_IOERR: BlkStatus = 10;

/// `REQ_OP_MASK` and request flags (blk_types.h).
const REQ_OP_MASK: u32 = (1 << 8) - 1;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
const REQ_NOUNMAP: u32 = 1 << bindings::req_flag_bits___REQ_NOUNMAP;
/// `RQF_QUIET` (blk-mq.h): no "I/O error" log line for this request.
const RQF_QUIET: u32 = 1 << bindings::rqf_flags___RQF_QUIET;

/// The block status for a backing-file error (`errno_to_blk_status`).
pub(crate) fn error_status(error: Error) -> BlkStatus {
    // SAFETY: `errno_to_blk_status` is a pure mapping from an errno value to a
    // status, with no precondition.
    unsafe { bindings::errno_to_blk_status(error.to_errno()) }
}

/// Per-request driver data (the request's PDU, `cmd_size` bytes after it):
/// the work item that runs the request, and its asynchronous read or write.
#[repr(C)]
pub(crate) struct RequestPdu {
    pub(crate) work: bindings::work_struct,
    pub(crate) async_io: AsyncIo,
}

/// The operation of a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqOp {
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
    Other,
}

/// A blk-mq request that has been started and not yet ended.
///
/// # Invariants
///
/// `raw` is a started request owned by the driver until the glue ends it:
/// with the status `queue_rq` returns, or with `blk_mq_end_request` after its
/// work item ran (see `operations.rs`).
pub(crate) struct Request {
    raw: NonNull<bindings::request>,
}

// SAFETY: A started request may be completed from any thread.
unsafe impl Send for Request {}

impl Request {
    /// Takes over a started request.
    ///
    /// # Safety
    ///
    /// `rq` is a started request of a tag set of this driver, not yet ended,
    /// and no other `Request` handle for it exists.
    pub(in crate::glue) unsafe fn from_raw(rq: *mut bindings::request) -> Self {
        // INVARIANT: Per the function contract, `rq` is a started request
        // that the driver owns.
        Self {
            // SAFETY: A started request is a valid, so non-null, pointer.
            raw: unsafe { NonNull::new_unchecked(rq) },
        }
    }

    /// The C request.
    pub(in crate::glue) fn as_raw(&self) -> *mut bindings::request {
        self.raw.as_ptr()
    }

    /// The request's PDU.
    pub(in crate::glue) fn pdu(&self) -> *mut RequestPdu {
        // SAFETY: `raw` is a request of one of our tag sets, whose PDU is a
        // `RequestPdu` (`cmd_size`).
        unsafe { bindings::blk_mq_rq_to_pdu(self.raw.as_ptr()) }.cast::<RequestPdu>()
    }

    /// The asynchronous I/O state in the request's PDU.
    pub(in crate::glue) fn pdu_async_io(&self) -> *mut AsyncIo {
        // SAFETY: `pdu` points at the valid PDU of this request.
        unsafe { &raw mut (*self.pdu()).async_io }
    }

    /// The operation (`req_op`).
    pub(crate) fn op(&self) -> ReqOp {
        // SAFETY: `raw` is valid by the type invariant.
        let flags = unsafe { (*self.raw.as_ptr()).cmd_flags };
        match flags & REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => ReqOp::Read,
            bindings::req_op_REQ_OP_WRITE => ReqOp::Write,
            bindings::req_op_REQ_OP_FLUSH => ReqOp::Flush,
            bindings::req_op_REQ_OP_DISCARD => ReqOp::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => ReqOp::WriteZeroes,
            _ => ReqOp::Other,
        }
    }

    /// The first bio (NULL for a flush without data).
    pub(in crate::glue) fn first_bio(&self) -> *mut bindings::bio {
        // SAFETY: `raw` is valid by the type invariant.
        unsafe { (*self.raw.as_ptr()).bio }
    }

    /// The I/O priority the submitter gave the request (`req_get_ioprio`:
    /// its first bio's).
    fn ioprio(&self) -> u16 {
        let bio = self.first_bio();
        if bio.is_null() {
            return 0;
        }
        // SAFETY: `bio` is a bio of this in-flight request.
        unsafe { (*bio).bi_ioprio }
    }

    /// The operation and flags (`cmd_flags`).
    fn cmd_flags(&self) -> u32 {
        // SAFETY: `raw` is valid by the type invariant.
        unsafe { (*self.raw.as_ptr()).cmd_flags }
    }

    /// A write that must reach stable storage before it completes (`REQ_FUA`).
    pub(crate) fn is_fua(&self) -> bool {
        self.cmd_flags() & REQ_FUA != 0
    }

    /// A write-zeroes that must not deallocate the range (`REQ_NOUNMAP`).
    pub(crate) fn no_unmap(&self) -> bool {
        self.cmd_flags() & REQ_NOUNMAP != 0
    }

    /// Byte position on the device (`blk_rq_pos << 9`).
    pub(crate) fn position(&self) -> u64 {
        // SAFETY: `raw` is valid by the type invariant.
        unsafe { (*self.raw.as_ptr()).__sector << SECTOR_SHIFT }
    }

    /// Total length in bytes (`blk_rq_bytes`).
    pub(crate) fn bytes(&self) -> u64 {
        // SAFETY: `raw` is valid by the type invariant.
        u64::from(unsafe { (*self.raw.as_ptr()).__data_len })
    }

    /// Does not log an I/O error line when it fails (fault injection,
    /// requests to an unbound device).
    pub(crate) fn set_quiet(&self) {
        // SAFETY: The driver owns the started request (type invariant).
        unsafe { (*self.raw.as_ptr()).rq_flags |= RQF_QUIET };
    }

    /// Completes the first `bytes` of the request successfully (none if that
    /// would be all of it); the rest stays in flight, to be ended (with an
    /// error) by the caller.
    pub(crate) fn end_leading_bytes(&self, bytes: u64) {
        if bytes == 0 || bytes >= self.bytes() {
            return;
        }
        // SAFETY: The driver owns the started request (type invariant) and
        // `bytes` is less than what is left of it, so the request is not
        // finished and stays valid for the caller's final `blk_mq_end_request`.
        unsafe { bindings::blk_update_request(self.raw.as_ptr(), BLK_STS_OK, bytes as c_uint) };
    }

    /// The request's data as one `iov_iter` over all its bvecs, for one
    /// kiocb per request (as loop.c's `lo_rw_aio`). A request of one bio
    /// iterates that bio's own bvec table; a request of several (merged bios)
    /// gets a table of its own, gathered here (the caller runs with
    /// `PF_MEMALLOC_NOIO`, so the allocation never recurses into block I/O).
    pub(crate) fn data(&self, write: bool) -> Result<RequestData<'_>> {
        let first = self.first_bio();
        if first.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `first` is a bio of this in-flight request; its chain is
        // stable while the request is in flight. `bi_iter` is a packed
        // structure: it is copied out, never referenced.
        let (iter, vecs, next) =
            unsafe { ((*first).bi_iter, (*first).bi_io_vec, (*first).bi_next) };
        if next.is_null() {
            let nr = bvecs_spanned(vecs, iter);
            // SAFETY: The bio's table covers `bi_size` bytes from `bi_idx`
            // over `nr` entries, and outlives the iterator (the request
            // holds the bio).
            let table = unsafe { vecs.add(iter.bi_idx as usize) };
            return Ok(RequestData::new(
                table,
                nr,
                iter.bi_bvec_done,
                iter.bi_size,
                write,
                self.ioprio(),
                None,
            ));
        }
        let mut nr = 0;
        self.for_each_bio_iter(|vecs, iter| nr += bvecs_spanned(vecs, iter));
        let mut table = KVec::with_capacity(nr, GFP_KERNEL)?;
        let mut total = 0u32;
        self.for_each_bio_iter(|vecs, iter| {
            total += iter.bi_size;
            let mut left = iter.bi_size;
            let mut skip = iter.bi_bvec_done;
            let mut idx = iter.bi_idx as usize;
            while left > 0 {
                // SAFETY: As in `bvecs_spanned`: every index read is inside
                // the bio's table, which covers `bi_size` bytes from `bi_idx`.
                let mut bvec = unsafe { *vecs.add(idx) };
                bvec.bv_offset += skip;
                bvec.bv_len = (bvec.bv_len - skip).min(left);
                left -= bvec.bv_len;
                skip = 0;
                idx += 1;
                // Cannot fail: `nr` entries were counted the same way.
                let _ = table.push_within_capacity(bvec);
            }
        });
        let ptr = table.as_mut_ptr();
        let entries = table.len();
        Ok(RequestData::new(
            ptr,
            entries,
            0,
            total,
            write,
            self.ioprio(),
            Some(table),
        ))
    }

    /// Calls `f` on each non-empty bio of the request with its bvec table and
    /// iterator.
    fn for_each_bio_iter(&self, mut f: impl FnMut(*mut bindings::bio_vec, bindings::bvec_iter)) {
        let mut bio = self.first_bio();
        while !bio.is_null() {
            // SAFETY: `bio` is a bio of this in-flight request, whose chain is
            // stable. `bi_iter` is packed: copied out, never referenced.
            let (iter, vecs, next) = unsafe { ((*bio).bi_iter, (*bio).bi_io_vec, (*bio).bi_next) };
            if iter.bi_size > 0 {
                f(vecs, iter);
            }
            bio = next;
        }
    }
}

/// How many bvecs of `vecs` the bio's remaining bytes span, starting at
/// `bi_idx` with `bi_bvec_done` bytes of it already consumed (`bi_vcnt` is
/// meaningless for cloned bios).
fn bvecs_spanned(vecs: *const bindings::bio_vec, it: bindings::bvec_iter) -> usize {
    let (idx, done, size) = (it.bi_idx as usize, it.bi_bvec_done, it.bi_size);
    let mut nr = 0usize;
    let mut covered = 0u64;
    while covered < u64::from(size) {
        // SAFETY: The bvec table of an in-flight bio covers `bi_size` bytes
        // from `bi_idx`, so every index read here is inside it.
        let len = unsafe { (*vecs.add(idx + nr)).bv_len };
        covered += u64::from(len) - if nr == 0 { u64::from(done) } else { 0 };
        nr += 1;
    }
    nr
}

/// The data of a request as one `iov_iter` over its bvecs, with the
/// request's I/O priority, which the backing I/O inherits (loop.c's
/// `ki_ioprio`).
///
/// # Invariants
///
/// `iter` describes the pinned pages of the request it was made from, through
/// a bvec table that is either the request's single bio's (alive while the
/// request is) or `gathered`'s heap buffer, which never moves.
pub(crate) struct RequestData<'a> {
    pub(in crate::glue) iter: bindings::iov_iter,
    pub(in crate::glue) ioprio: u16,
    len: usize,
    gathered: Option<KVec<bindings::bio_vec>>,
    _request: PhantomData<&'a Request>,
}

impl RequestData<'_> {
    fn new(
        table: *mut bindings::bio_vec,
        nr: usize,
        skip: u32,
        size: u32,
        write: bool,
        ioprio: u16,
        gathered: Option<KVec<bindings::bio_vec>>,
    ) -> Self {
        let direction = if write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        let mut iter = MaybeUninit::<bindings::iov_iter>::zeroed();
        // SAFETY: `iter` is writable; the `nr` bvecs at `table` cover `skip +
        // size` bytes and outlive the iterator (see the type invariant).
        unsafe {
            bindings::iov_iter_bvec(
                iter.as_mut_ptr(),
                direction as c_uint,
                table,
                nr as c_ulong,
                size as usize,
            );
        }
        // SAFETY: `iov_iter_bvec` initialised the iterator.
        let mut iter = unsafe { iter.assume_init() };
        iter.iov_offset = skip as usize;
        // INVARIANT: `table` is the single bio's table or `gathered`'s buffer.
        Self {
            iter,
            ioprio,
            len: size as usize,
            gathered,
            _request: PhantomData,
        }
    }

    /// The iterator, the I/O priority, the length and the gathered bvec
    /// table (if any: the iterator points into it), for I/O that outlives
    /// this value. The caller keeps the table until the I/O completes.
    pub(in crate::glue) fn into_parts(
        self,
    ) -> (
        bindings::iov_iter,
        u16,
        usize,
        Option<KVec<bindings::bio_vec>>,
    ) {
        (self.iter, self.ioprio, self.len, self.gathered)
    }

    /// The request's data length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Zero-fills the data after its first `done` bytes (the tail of a
    /// short read, which advanced the iterator by `done`).
    pub(crate) fn zero_after(&mut self, done: usize) {
        let left = self.len.saturating_sub(done);
        // SAFETY: The iterator describes pinned, writable request pages.
        unsafe { bindings::iov_iter_zero(left, &mut self.iter) };
    }
}
