// SPDX-License-Identifier: GPL-2.0

//! The operations a driver implements for its disks ([`DiskOps`]), and the C
//! vtables that call them: `struct block_device_operations` and
//! `struct blk_mq_ops`.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use super::{
    async_io::{
        AsyncIo,
        IoInFlight, //
    },
    gen_disk::{
        self,
        Disk,
        OpenMutexToken, //
    },
    request::{
        BlkStatus,
        Request,
        RequestPdu,
        BLK_STS_IOERR,
        BLK_STS_OK, //
    },
};
use crate::glue::{
    bdev::{
        BlockDevice,
        OpenMode, //
    },
    blkcg::BlkcgAssociation,
    task::TaskFlagsScope,
    workqueue::queue_io_work,
    SyncTable,
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::from_result,
    ffi::{
        c_int,
        c_uint,
        c_ulong,
        c_void, //
    },
    prelude::*,
    sync::Arc,
    types::ForeignOwnable, //
};

/// The driver logic behind a disk: implemented by the loop device.
///
/// The disk's `private_data` holds an `Arc<Self>` from [`Disk::add`] until the
/// block core frees the disk, so every callback reaches the device.
pub(crate) trait DiskOps: Send + Sync + Sized + 'static {
    /// State the request path reads lock-free; written only with the queue frozen.
    type IoState: Send + Sync;

    /// The disk of this device.
    fn disk(&self) -> &Disk<Self>;

    /// The disk (or one of its partitions) is being opened (`->open`). An
    /// error fails the open.
    fn open(&self) -> Result;

    /// An opener closed the disk (`->release`); `disk_openers` is the number
    /// of openers left. Called under the block core's `open_mutex`,
    /// witnessed by the token.
    fn release(&self, disk_openers: u32, open_mutex: OpenMutexToken);

    /// An ioctl on the disk or a partition (`->ioctl`, or `->compat_ioctl`
    /// from 32-bit user space with `compat` set). Returns the ioctl's result.
    fn ioctl(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
        compat: bool,
    ) -> Result<i32>;

    /// Decides, in the submitter's context, what happens to a new request
    /// (`->queue_rq`); `io` is the state the disk serves with.
    fn queue_rq(&self, io: &Self::IoState, rq: &Request) -> Dispatch;

    /// Runs a request that `queue_rq` deferred, in a worker: returns the
    /// status it ends with, or that its read or write is in flight. A request
    /// whose asynchronous I/O came back short or failed runs here a second
    /// time ([`Request::async_io_failed`]), from the I/O workqueue: only a
    /// request deferred with [`Dispatch::Defer`] may go in flight.
    fn handle_request(&self, io: &Self::IoState, rq: &Request) -> RequestOutcome;
}

/// What a request's work item did with it.
pub(crate) enum RequestOutcome {
    /// It is done: end it with this status.
    Done(BlkStatus),
    /// Its asynchronous read or write is in flight; the I/O's completion
    /// ends it.
    InFlight(IoInFlight),
}

/// What `queue_rq` does with a request.
pub(crate) enum Dispatch {
    /// Fail it at once, quietly (the device is not bound).
    Fail,
    /// Run it on the I/O workqueue, in parallel with the others.
    Defer,
    /// Run it on the device's own ordered workqueue, one at a time (see
    /// [`Disk::enable_ordered_work`]).
    DeferInOrder,
}

/// The C callbacks of a disk type `T`.
pub(super) struct DiskVTable<T: DiskOps>(PhantomData<T>);

impl<T: DiskOps> DiskVTable<T> {
    pub(super) const FOPS: SyncTable<bindings::block_device_operations> =
        SyncTable(bindings::block_device_operations {
            submit_bio: None,
            open: Some(Self::open_callback),
            release: Some(Self::release_callback),
            ioctl: Some(Self::ioctl_callback),
            compat_ioctl: Some(Self::compat_ioctl_callback),
            check_events: None,
            unlock_native_capacity: None,
            getgeo: None,
            set_read_only: None,
            swap_slot_free_notify: None,
            report_zones: None,
            devnode: None,
            alternative_gpt_sector: None,
            get_unique_id: None,
            // `__this_module` is constructed by the kernel at load time and
            // outlives every disk of the module.
            owner: (&raw const bindings::__this_module).cast_mut(),
            pr_ops: core::ptr::null(),
            free_disk: Some(Self::free_disk_callback),
            poll_bio: None,
        });

    pub(super) const MQ_OPS: SyncTable<bindings::blk_mq_ops> = SyncTable(bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq_callback),
        complete: Some(Self::complete_callback),
        init_request: Some(Self::init_request_callback),
        // The remaining callbacks are optional and unused.
        ..pin_init::zeroed()
    });

    /// # Safety
    ///
    /// Only called by the block core, on a disk added by `Disk::add`.
    unsafe extern "C" fn open_callback(
        disk: *mut bindings::gendisk,
        _mode: bindings::blk_mode_t,
    ) -> c_int {
        // SAFETY: Called by the block core on one of our added disks, which
        // cannot be freed while it is being opened.
        let owner = unsafe { gen_disk::borrow_owner::<T>(disk) };
        from_result(|| owner.open().map(|()| 0))
    }

    /// # Safety
    ///
    /// Only called by the block core, on a disk added by `Disk::add`, with `open_mutex` held.
    unsafe extern "C" fn release_callback(disk: *mut bindings::gendisk) {
        // SAFETY: Called by the block core on one of our added disks, which
        // cannot be freed while it is being released.
        let owner = unsafe { gen_disk::borrow_owner::<T>(disk) };
        // The block core holds `open_mutex` around `->release`.
        owner.release(owner.disk().openers(), OpenMutexToken(()));
    }

    /// # Safety
    ///
    /// Only called by `ioctl_callback`/`compat_ioctl_callback`, with their guarantees.
    unsafe fn ioctl_common(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
        compat: bool,
    ) -> c_int {
        // SAFETY: The block core passes the live block device of an open disk.
        let disk = unsafe { (*bdev).bd_disk };
        // SAFETY: The disk is one of our added disks, kept open by the caller.
        let owner = unsafe { gen_disk::borrow_owner::<T>(disk) };
        // SAFETY: `bdev` stays live for the whole ioctl.
        let bdev = unsafe { BlockDevice::from_raw(bdev) };
        from_result(|| owner.ioctl(&bdev, OpenMode::from_raw(mode), cmd, arg, compat))
    }

    /// # Safety
    ///
    /// Only called by the block core, for an open disk of this driver.
    unsafe extern "C" fn ioctl_callback(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // SAFETY: Forwarded from the block core with its guarantees.
        unsafe { Self::ioctl_common(bdev, mode, cmd, arg, false) }
    }

    /// # Safety
    ///
    /// Only called by the block core, for an open disk of this driver.
    unsafe extern "C" fn compat_ioctl_callback(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // A compat pointer argument is a zero-extended 32-bit address, valid
        // as is on x86_64 (`compat_ptr`).
        // SAFETY: Forwarded from the block core with its guarantees.
        unsafe { Self::ioctl_common(bdev, mode, cmd, arg, true) }
    }

    /// # Safety
    ///
    /// Only called by the block core, once, when the last reference to a disk of this driver is dropped.
    unsafe extern "C" fn free_disk_callback(disk: *mut bindings::gendisk) {
        // SAFETY: The disk is still valid during `free_disk`.
        let private = unsafe { (*disk).private_data };
        // SAFETY: The last reference to the disk is gone: this releases the
        // owner reference `Disk::add` gave up with `into_foreign`, once.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(private) });
    }

    /// # Safety
    ///
    /// Only called by blk-mq, for a request of a tag set created by `Disk::new`.
    unsafe extern "C" fn init_request_callback(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
        _numa_node: c_int,
    ) -> c_int {
        // SAFETY: `rq` is a request of our tag set, whose PDU is a `RequestPdu`
        // (`cmd_size`).
        let pdu = unsafe { bindings::blk_mq_rq_to_pdu(rq) }.cast::<RequestPdu>();
        // SAFETY: `init_work_with_key` needs writable memory for the work item
        // and a static name and key: the PDU's work item is initialised once,
        // here, before any use; the name and the key are statics.
        unsafe {
            bindings::init_work_with_key(
                &raw mut (*pdu).work,
                Some(Self::work_callback),
                false,
                c"rloop_request".as_char_ptr(),
                kernel::static_lock_class!().as_ptr(),
            )
        };
        // SAFETY: The PDU is writable and its I/O state not yet initialised:
        // written without dropping the old bytes.
        unsafe { (&raw mut (*pdu).async_io).write(AsyncIo::idle()) };
        0
    }

    /// # Safety
    ///
    /// Only called by blk-mq, for a request of a queue of a disk created by `Disk::new`.
    unsafe extern "C" fn queue_rq_callback(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: The blk-mq layer passes valid queue data and a valid hardware context.
        let (rq, queue) = unsafe { ((*bd).rq, (*hctx).queue) };
        // SAFETY: The queue is valid while it has requests.
        let queuedata = unsafe { (*queue).queuedata };
        // SAFETY: `queuedata` is the owner pointer set in `Disk::add` (type
        // invariant of `Disk`), valid while the queue has requests.
        let owner = unsafe { <Arc<T> as ForeignOwnable>::borrow(queuedata) };
        // SAFETY: `rq` is a request blk-mq hands us to start.
        unsafe { bindings::blk_mq_start_request(rq) };
        // SAFETY: Started above; it is ended either by the returned error
        // status or by the work item, and this is its only handle.
        let request = unsafe { Request::from_raw(rq) };
        let disk = owner.disk();
        let dispatch = match disk.enter_io_state() {
            Some(io) => owner.queue_rq(io, &request),
            // Not bound: no state to read, and nothing to leave.
            None => {
                request.set_quiet();
                return BLK_STS_IOERR;
            }
        };
        let wq = match dispatch {
            Dispatch::Fail => {
                disk.leave_io_state();
                request.set_quiet();
                return BLK_STS_IOERR;
            }
            // The work item leaves the state when it is done with it.
            Dispatch::Defer => None,
            // The ordered workqueue lives until the disk is deleted,
            // after its last request.
            Dispatch::DeferInOrder => disk.ordered_wq(),
        };
        let pdu = request.pdu();
        // SAFETY: The request was just started: nothing else uses its PDU.
        unsafe { (*pdu).async_io.start() };
        // SAFETY: The work item was initialised by `init_request_callback`
        // and is not pending (the request was just started); it lives in the
        // PDU of the request, which stays in flight until the work item ends
        // it; a given `wq` is the disk's ordered workqueue, which outlives
        // the disk's requests; the module's I/O workqueue outlives every disk.
        unsafe { queue_io_work(&raw mut (*pdu).work, wq) };
        BLK_STS_OK
    }

    /// # Safety
    ///
    /// Only called by the workqueue, for a work item queued by `queue_rq_callback`.
    unsafe extern "C" fn work_callback(work: *mut bindings::work_struct) {
        // SAFETY: `work` is the work item inside the PDU of a request started
        // by `queue_rq_callback`.
        let pdu = unsafe { kernel::container_of!(work, RequestPdu, work) };
        // SAFETY: `pdu` is the PDU of that request.
        let rq = unsafe { bindings::blk_mq_rq_from_pdu(pdu.cast::<c_void>()) };
        // SAFETY: The request stays in flight (and its queue alive) until it
        // is ended below.
        let queuedata = unsafe { (*(*rq).q).queuedata };
        // SAFETY: As in `queue_rq_callback`: the owner pointer of `Disk::add`,
        // kept alive by the request in flight.
        let owner = unsafe { <Arc<T> as ForeignOwnable>::borrow(queuedata) };
        // SAFETY: Started by `queue_rq_callback`, not ended, and the handle it
        // made is gone.
        let request = unsafe { Request::from_raw(rq) };
        let outcome = {
            let _backing_io = TaskFlagsScope::backing_io();
            let _charged_to_issuer = BlkcgAssociation::of_request(&request);
            // SAFETY: `queue_rq_callback` entered the state for this request
            // and deferred it without leaving; it leaves below, after the
            // last use, or the I/O's completion does.
            let io = unsafe { owner.disk().entered_io_state() };
            owner.handle_request(io, &request)
        };
        match outcome {
            RequestOutcome::Done(status) => {
                owner.disk().leave_io_state();
                // SAFETY: The request is started and not yet ended; this ends it.
                unsafe { bindings::blk_mq_end_request(request.as_raw(), status) };
            }
            // SAFETY: The guards and the borrows of the request, its binding
            // and its device are gone: the request is the completion's now,
            // not a word more of it here.
            RequestOutcome::InFlight(in_flight) => unsafe { in_flight.hand_over() },
        }
    }

    /// `->complete`: a request's asynchronous read or write completed
    /// (blk-mq calls this for `blk_mq_complete_request` in `async_io.rs`, in
    /// interrupt or softirq context). I/O of the whole request ends it; any
    /// other result runs it again, synchronously, from its work item, which
    /// then reports the error, the end of the file or the short write as the
    /// synchronous path does.
    ///
    /// # Safety
    ///
    /// Only called by blk-mq, for a request whose queued I/O completed.
    unsafe extern "C" fn complete_callback(rq: *mut bindings::request) {
        // SAFETY: The request is started and its I/O completed: the driver
        // owns it again, through this handle only.
        let request = unsafe { Request::from_raw(rq) };
        let pdu = request.pdu();
        // SAFETY: The I/O completed: nothing else uses the PDU.
        let whole = unsafe { (*pdu).async_io.finish() };
        if !whole {
            // SAFETY: The work item is initialised and not pending (it ran,
            // and returned without touching the request once the I/O
            // queued); the request stays in flight until it ends it; a
            // request that went in flight was deferred to the I/O workqueue
            // (see `DiskOps::handle_request`), where it runs again.
            unsafe { queue_io_work(&raw mut (*pdu).work, None) };
            return;
        }
        // SAFETY: As in `queue_rq_callback`: the owner pointer of `Disk::add`,
        // kept alive by the request in flight.
        let owner = unsafe { <Arc<T> as ForeignOwnable>::borrow((*(*rq).q).queuedata) };
        owner.disk().leave_io_state();
        // SAFETY: The request is started and not yet ended; this ends it.
        unsafe { bindings::blk_mq_end_request(rq, BLK_STS_OK) };
    }
}
