// SPDX-License-Identifier: GPL-2.0

//! Workqueues the driver owns: the module's I/O workqueue and a disk's
//! ordered workqueue (the `kernel` crate only offers the system queues).
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::{
        AtomicPtr,
        Ordering, //
    },
};
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*, //
};

/// The workqueue that runs the requests of every rloop device, one work item
/// per request.
///
/// # Invariants
///
/// `raw` is a valid workqueue, published in `IO_WORKQUEUE` while `self` lives.
pub(crate) struct IoWorkQueue {
    raw: NonNull<bindings::workqueue_struct>,
}

/// The live `IoWorkQueue`, for `queue_rq` (which has no other way to reach it).
static IO_WORKQUEUE: AtomicPtr<bindings::workqueue_struct> = AtomicPtr::new(ptr::null_mut());

// SAFETY: Workqueues are designed to be used from any thread.
unsafe impl Send for IoWorkQueue {}
// SAFETY: See above.
unsafe impl Sync for IoWorkQueue {}

impl IoWorkQueue {
    /// An unbound, freezable workqueue with a rescuer thread (I/O on the
    /// backing file must make progress under memory pressure). There is one
    /// per module: creating it publishes it to the request path.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_UNBOUND
            | bindings::wq_flags_WQ_FREEZABLE
            | bindings::wq_flags_WQ_MEM_RECLAIM;
        // SAFETY: `alloc_workqueue_noprof` takes a printf format and its
        // arguments: the format is a valid C string consuming one `%s`
        // argument, and `name` is a valid C string.
        let raw = unsafe {
            bindings::alloc_workqueue_noprof(c"%s".as_char_ptr(), flags, 0, name.as_char_ptr())
        };
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        IO_WORKQUEUE.store(raw.as_ptr(), Ordering::Release);
        // INVARIANT: `alloc_workqueue_noprof` returned a valid workqueue,
        // published above.
        Ok(Self { raw })
    }
}

impl Drop for IoWorkQueue {
    fn drop(&mut self) {
        IO_WORKQUEUE.store(ptr::null_mut(), Ordering::Release);
        // SAFETY: Valid by the type invariant; `destroy_workqueue` requires
        // that nothing queues work any more: every disk was deleted before
        // (see `LoopModule`), so no request can, and it drains what is queued.
        unsafe { bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}

/// Queues a request's work item on `wq`, a disk's ordered workqueue, or
/// without one on the module's I/O workqueue.
///
/// # Safety
///
/// `work` is an initialised, not pending work item that stays valid until it
/// has run; `wq`, if given, is a workqueue that outlives it. The module's
/// [`IoWorkQueue`] exists.
pub(crate) unsafe fn queue_io_work(
    work: *mut bindings::work_struct,
    wq: Option<NonNull<bindings::workqueue_struct>>,
) {
    let wq = wq.map_or_else(|| IO_WORKQUEUE.load(Ordering::Acquire), NonNull::as_ptr);
    // SAFETY: `queue_work_on` needs a valid workqueue and work item: disks
    // exist only while the module's `IoWorkQueue` lives (it is created first
    // and dropped last), so the module's queue is valid; `work` and a given
    // `wq` per the function contract.
    unsafe {
        bindings::queue_work_on(bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int, wq, work)
    };
}

/// A disk's ordered workqueue: one worker thread that runs its work items one
/// at a time, like loop.c's per-device worker, with loop.c's flags (no rescuer
/// thread, whose creation would dominate a first bind).
///
/// # Invariants
///
/// `raw` is a valid workqueue, destroyed when `self` is dropped.
pub(crate) struct OrderedWorkQueue {
    raw: NonNull<bindings::workqueue_struct>,
}

impl OrderedWorkQueue {
    /// Creates the workqueue `rloop<number>`.
    pub(crate) fn new(number: u32) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_UNBOUND
            | bindings::wq_flags_WQ_FREEZABLE
            | bindings::wq_flags___WQ_ORDERED;
        // SAFETY: The format string is a valid C string consuming one `%u`,
        // which `number` is.
        let raw =
            unsafe { bindings::alloc_workqueue_noprof(c"rloop%u".as_char_ptr(), flags, 1, number) };
        // INVARIANT: A non-null result is a valid workqueue.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }

    /// Gives up ownership: the caller destroys the queue with
    /// [`Self::from_raw`] and a drop.
    pub(crate) fn into_raw(self) -> *mut bindings::workqueue_struct {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        raw
    }

    /// Takes back ownership of a queue given up with [`Self::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` comes from [`Self::into_raw`] and is taken back only once.
    pub(crate) unsafe fn from_raw(raw: NonNull<bindings::workqueue_struct>) -> Self {
        // INVARIANT: Per the function contract, `raw` is a valid workqueue
        // nobody else destroys.
        Self { raw }
    }
}

impl Drop for OrderedWorkQueue {
    fn drop(&mut self) {
        // SAFETY: Valid by the type invariant; owners drop the queue only once
        // no request can queue work on it any more (`destroy_workqueue`'s
        // requirement), and `destroy_workqueue` drains what is queued.
        unsafe { bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}
