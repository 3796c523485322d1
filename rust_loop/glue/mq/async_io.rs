// SPDX-License-Identifier: GPL-2.0

//! Asynchronous direct reads and writes of a request: a `struct kiocb` in the
//! request's PDU whose `ki_complete` hands the request back to blk-mq, to be
//! ended in the disk's `->complete` (loop.c's `lo_rw_aio`). One worker thus
//! keeps many reads and writes in flight instead of sleeping in each.
//!
//! A write keeps the backing file system from freezing until it completes.
//! `vfs_iocb_iter_write` takes the super block's freeze protection
//! (`kiocb_start_write`, which also tells lockdep that the submitter let it
//! go, so that the worker returns holding nothing in its eyes) and leaves its
//! end to the completion of a write it queues (`kiocb_end_write`, as
//! cachefiles and overlayfs's backing files call it). That end is an inline
//! function of `fs.h` over the per-CPU rwsem's inline fast path, out of a
//! Rust module's reach; the exported `mnt_drop_write_file` does the same
//! (`sb_end_write` of `file_inode(file)->i_sb`) after giving back the write
//! access to the mount that `mnt_want_write_file` takes for a file without
//! its own (a device node: a regular file opened for writing holds it while
//! open). So the submitter first takes that access alone for such a file
//! (`mnt_want_write_file` would take the protection a second time), and the
//! last user of a queued write tells lockdep it holds the protection
//! (`__sb_writers_acquired`) and ends both with `mnt_drop_write_file`, from
//! any context: both are per-CPU counter decrements and a wake-up. A write
//! that does not queue only gives the access back: `vfs_iocb_iter_write`
//! ended the protection itself.
//!
//! The work item stays a user of a queued I/O until it returns
//! ([`IoInFlight`]): the request, and with it the binding the worker borrows,
//! cannot end under its feet.
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
    error::to_result,
    ffi::{
        c_int,
        c_long,
        c_void, //
    },
    prelude::*,
};

/// The state of a request's asynchronous read or write, in its PDU.
#[repr(C)]
pub(crate) struct AsyncIo {
    kiocb: bindings::kiocb,
    /// The bvec table gathered for a request of several bios, kept until the
    /// I/O completes: the lower bios may use it as their own
    /// (`bio_iov_bvec_set`).
    gathered: Option<KVec<bindings::bio_vec>>,
    /// The bytes the I/O must transfer to have done the whole request.
    expected: usize,
    /// `ki_complete`'s result.
    result: c_long,
    /// An asynchronous I/O of this request did not transfer all of it: its
    /// work item runs the request again, synchronously.
    retry_sync: bool,
    /// The I/O is a write: until it completes, it holds write access to the
    /// file's mount and the freeze protection of its super block (see the
    /// module documentation).
    write: bool,
    /// Who still uses the kiocb: the submitter, until its work item is done
    /// with the request, the binding and the device (ext4 still reads
    /// `ki_filp` after queueing the I/O, and the worker's borrows of the
    /// binding must outlive its calls), and the completion. The last one
    /// completes the request (loop.c's `cmd->ref`).
    users: AtomicU32,
}

impl AsyncIo {
    /// The state of a request that has no asynchronous I/O.
    pub(in crate::glue) const fn idle() -> Self {
        Self {
            kiocb: pin_init::zeroed(),
            gathered: None,
            expected: 0,
            result: 0,
            retry_sync: false,
            write: false,
            users: AtomicU32::new(0),
        }
    }

    /// Drops one user of the kiocb; the last one ends a write's hold on the
    /// file's mount and hands the request to blk-mq's completion.
    ///
    /// # Safety
    ///
    /// `io` is the asynchronous I/O state of a request whose I/O was queued,
    /// and the caller is one of its two users, dropping its use once.
    unsafe fn put_user(io: *mut Self) {
        // SAFETY: The request is in flight until its last user is gone.
        if unsafe { (*io).users.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: The last user, after the other (`AcqRel` above): nothing
        // else touches the state until blk-mq's completion, below.
        let state = unsafe { &*io };
        if state.write {
            // SAFETY: The write was queued and has completed, and this is its
            // last user, once; the binding keeps the file open until the
            // request ends.
            unsafe { end_write(state.kiocb.ki_filp) };
        }
        // SAFETY: `io` is the `async_io` field of a `RequestPdu`.
        let pdu = unsafe { kernel::container_of!(io, RequestPdu, async_io) };
        // SAFETY: `pdu` is the PDU of a started request.
        let rq = unsafe { bindings::blk_mq_rq_from_pdu(pdu.cast::<c_void>()) };
        // SAFETY: The request is started, not ended, and its completion is
        // ours to report: blk-mq calls the disk's `->complete` once.
        unsafe { bindings::blk_mq_complete_request(rq) };
    }

    /// A new request: no I/O of it has failed yet.
    pub(in crate::glue) fn start(&mut self) {
        self.retry_sync = false;
    }

    /// Takes the result of a completed I/O, frees what it needed, and says
    /// whether it transferred the whole request.
    pub(in crate::glue) fn finish(&mut self) -> bool {
        self.gathered = None;
        let whole = usize::try_from(self.result).is_ok_and(|done| done == self.expected);
        self.retry_sync = !whole;
        whole
    }
}

/// Ends the hold of a queued write on the file's super block
/// (`kiocb_end_write`) and mount: tells lockdep that this context holds the
/// freeze protection the submitter let go in its eyes
/// (`__sb_writers_acquired`), then drops the protection and the access with
/// `mnt_drop_write_file`. Runs in any context: often `ki_complete`'s
/// interrupt.
///
/// # Safety
///
/// `file` is open, and a write to it that [`BackingFile::start_direct_io`]
/// queued has completed; called once per such write.
unsafe fn end_write(file: *mut bindings::file) {
    #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
    {
        // SAFETY: The file is open (function contract): its inode, set at
        // open, pins its super block.
        let sb = unsafe { (*(*file).f_inode).i_sb };
        let level = bindings::SB_FREEZE_WRITE as usize - 1;
        // SAFETY: `sb` is live (above); this only takes a field's address.
        let dep_map = unsafe { &raw mut (*sb).s_writers.rw_sem[level].dep_map };
        // The code address lockdep reports the hold at (`_THIS_IP_`).
        let ip = (end_write as *const ()).addr();
        // SAFETY: `lock_acquire` records a hold of the live lock map
        // `dep_map` as `percpu_rwsem_acquire(sem, true, ip)` does: subclass
        // 0, a trylock (no dependency checks: the write holds the lock
        // already), a read hold, checked, no nest lock.
        // `mnt_drop_write_file` releases it below.
        unsafe { bindings::lock_acquire(dep_map, 0, 1, 1, 1, core::ptr::null_mut(), ip) };
    }
    // SAFETY: `mnt_drop_write_file` ends what `mnt_want_write_file` takes:
    // here the mount access the submitter took for a file without its own
    // (`BackingFile::get_write_access`), and the freeze protection of
    // `file_inode(file)->i_sb` that `vfs_iocb_iter_write` took
    // (`kiocb_start_write`) and left to the completion.
    unsafe { bindings::mnt_drop_write_file(file) };
}

/// How a direct read or write started.
pub(crate) enum AsyncStart {
    /// In flight: the request ends when the I/O completes.
    Queued(IoInFlight),
    /// Done already, with this many bytes transferred.
    Done(usize),
}

/// A request's queued I/O, of which the work item is still a user: it hands
/// the request over to the completion ([`IoInFlight::hand_over`]) once done
/// with it, and must neither end it nor touch it afterwards. Only the glue
/// makes one.
#[must_use]
pub(crate) struct IoInFlight(*mut AsyncIo);

impl IoInFlight {
    /// Drops the work item's use of the queued I/O; the request may end
    /// before this returns.
    ///
    /// # Safety
    ///
    /// Called by the request's work item after its last use of the request,
    /// its binding and its device: no borrow of them may be live.
    pub(in crate::glue) unsafe fn hand_over(self) {
        // SAFETY: The I/O was queued, and this is the submitter's one put.
        unsafe { AsyncIo::put_user(self.0) };
    }
}

impl Request {
    /// An asynchronous I/O of this request came back short or failed: run it
    /// synchronously instead (the worker's second run of it).
    pub(crate) fn async_io_failed(&self) -> bool {
        // SAFETY: The driver owns the started request; its PDU is a
        // `RequestPdu`, written by the completion before it queued the work
        // item that now runs (`queue_work` orders the two).
        unsafe { (*self.pdu()).async_io.retry_sync }
    }
}

impl BackingFile {
    /// Starts reading (or, with `write`, writing) the whole of `rq` at
    /// position `pos` with direct I/O and a completion callback. The caller
    /// runs with `PF_MEMALLOC_NOIO` (see [`Request::data`]).
    pub(crate) fn start_direct_io(
        &self,
        rq: &Request,
        pos: u64,
        write: bool,
    ) -> Result<AsyncStart> {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let (mut iter, ioprio, expected, gathered) = rq.data(write)?.into_parts();
        if write {
            self.get_write_access()?;
        }
        // `IOCB_WRITE` marks an asynchronous write, as aio, io_uring and
        // cachefiles mark theirs: a stacked file system ends the freeze
        // protection of the lower file's write only for a kiocb that has it
        // (overlayfs's `backing_file_write_iter`, completing its own kiocb
        // with our flags).
        let flags = if write {
            bindings::IOCB_DIRECT | bindings::IOCB_WRITE
        } else {
            bindings::IOCB_DIRECT
        };
        let io = rq.pdu_async_io();
        // SAFETY: The driver owns the started request and its PDU; no I/O of
        // it is in flight (a request's work item starts at most one, and only
        // while no other runs). The table moves into the PDU before the I/O
        // starts, so the completion always finds it there; moving the vector
        // does not move the buffer `iter` points into.
        unsafe {
            let kiocb = &mut (*io).kiocb;
            *kiocb = pin_init::zeroed();
            kiocb.ki_filp = self.raw();
            kiocb.ki_flags = flags as c_int;
            kiocb.ki_pos = pos;
            kiocb.ki_ioprio = ioprio;
            kiocb.ki_complete = Some(io_complete);
            (*io).gathered = gathered;
            (*io).expected = expected;
            (*io).write = write;
            (*io).users.store(2, Ordering::SeqCst);
        }
        let ret = if write {
            // SAFETY: As for the read below, for `vfs_iocb_iter_write`, which
            // also takes the freeze protection and, if the write queues,
            // leaves its end to the last user (see the module documentation).
            unsafe { bindings::vfs_iocb_iter_write(self.raw(), &raw mut (*io).kiocb, &mut iter) }
        } else {
            // SAFETY: `file` is valid while the binding holds it, and the
            // binding outlives the request (it left no I/O state yet); the
            // kiocb lives in the PDU until the request ends, which happens
            // only after `ki_complete` (or now, if the read does not queue);
            // the iterator is valid for the call and the pages it describes
            // are pinned by the request in flight.
            unsafe { bindings::vfs_iocb_iter_read(self.raw(), &raw mut (*io).kiocb, &mut iter) }
        };
        if ret == -(bindings::EIOCBQUEUED as isize) {
            // The work item keeps its use until it returns: until then the
            // request, and with it the binding and `self`, stay alive.
            return Ok(AsyncStart::Queued(IoInFlight(io)));
        }
        // SAFETY: The I/O did not queue: no completion runs for it, and the
        // PDU is ours again.
        unsafe { (*io).gathered = None };
        if write {
            // `vfs_iocb_iter_write` ended the freeze protection itself.
            self.put_write_access();
        }
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(AsyncStart::Done(ret as usize))
    }

    /// The mount the file was opened on.
    fn mount(&self) -> *mut bindings::vfsmount {
        // SAFETY: The file is valid while we hold the reference; `f_path` is
        // set at open and never changes.
        unsafe { (*self.raw()).__bindgen_anon_1.f_path.mnt }
    }

    /// Takes write access to the file's mount for an asynchronous write, as
    /// `mnt_want_write_file` does (without the freeze protection, which
    /// `vfs_iocb_iter_write` takes): a file opened for writing on its mount
    /// (`FMODE_WRITER`, a regular file) holds it already; a device node
    /// takes it per write. `end_write` gives it back with the protection.
    /// Fails with `EROFS` if the mount or its file system went read-only.
    fn get_write_access(&self) -> Result {
        if self.has_mount_write_access() {
            return Ok(());
        }
        // SAFETY: `mnt_get_write_access` needs a live mount: the open file
        // pins its mount.
        to_result(unsafe { bindings::mnt_get_write_access(self.mount()) })
    }

    /// Gives back the write access [`Self::get_write_access`] took, for a
    /// write that did not queue (`mnt_put_write_access_file`).
    fn put_write_access(&self) {
        if self.has_mount_write_access() {
            return;
        }
        // SAFETY: `mnt_put_write_access` must match an
        // `mnt_get_write_access`: the caller's, on this open file's mount.
        unsafe { bindings::mnt_put_write_access(self.mount()) };
    }
}

/// `ki_complete` of a request's read or write, called by the backing file
/// system, often in interrupt context: records the result; the request
/// completes once the submitter is done with the kiocb too (see
/// `AsyncIo::users`).
///
/// # Safety
///
/// Only called once by the file system, for a kiocb that
/// [`BackingFile::start_direct_io`] queued.
unsafe extern "C" fn io_complete(kiocb: *mut bindings::kiocb, result: c_long) {
    // SAFETY: The kiocb is the one inside an `AsyncIo`, inside the PDU of
    // a request still in flight.
    let io = unsafe { kernel::container_of!(kiocb, AsyncIo, kiocb) };
    // SAFETY: As above; the submitter does not touch `result`.
    unsafe { (*io).result = result };
    // SAFETY: The I/O was queued; this is the completion's one put.
    unsafe { AsyncIo::put_user(io) };
}
