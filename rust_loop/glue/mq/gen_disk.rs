// SPDX-License-Identifier: GPL-2.0

//! A generic disk (`struct gendisk`) with its own tag set: allocation, adding
//! and deleting, capacity, read-only state, uevents, partitions, the
//! `open_mutex`, and the I/O state its requests read.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use super::{
    tag_set::{
        QueueShape,
        TagSet, //
    },
    DiskOps, //
};
use crate::glue::workqueue::OrderedWorkQueue;
use core::{
    cell::UnsafeCell,
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::{
        AtomicBool,
        AtomicPtr,
        AtomicUsize,
        Ordering, //
    },
};
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    ffi::{
        c_int,
        c_ulong, //
    },
    new_mutex,
    prelude::*,
    str::NullTerminatedFormatter,
    sync::{
        Arc,
        ArcBorrow,
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta, //
    },
    types::{
        ForeignOwnable,
        ScopeGuard, //
    },
};

/// A gendisk with its tag set, owned by the device `T` it serves.
///
/// # Invariants
///
/// - `gendisk` is a valid disk allocated on `tag_set`; it is added to the
///   system by `add` and deleted exactly once by `delete` (or released by
///   `Drop` if it was never added).
/// - Once added, the disk's `private_data` holds an `Arc<T>` (given up with
///   `into_foreign`) until the block core calls `free_disk`, and the queue's
///   `queuedata` is a copy of that pointer.
/// - `io_state` is read only by a request that entered it (see
///   [`Disk::enter_io_state`]: it counted itself in `io_state_readers`, then saw
///   `serving` set), until it leaves.
/// - `io_state` is written only with `freeze_lock` held and while no request
///   can be reading it: either the queue is frozen (a [`Frozen`] guard; frozen
///   means no request in flight), or `serving` is clear and no reader that saw
///   it set is left ([`Disk::start_serving`], [`Disk::stop_serving`]).
///
/// [`Frozen`]: super::limits::Frozen
#[pin_data(PinnedDrop)]
pub(crate) struct Disk<T: DiskOps> {
    gendisk: NonNull<bindings::gendisk>,
    tag_set: TagSet,
    #[pin]
    pub(super) freeze_lock: Mutex<()>,
    pub(super) io_state: UnsafeCell<T::IoState>,
    /// Whether requests may read `io_state` (the device is bound). Binding
    /// and unbinding flip it without a queue freeze, whose RCU grace period
    /// would dominate an attach/detach cycle.
    serving: AtomicBool,
    /// Requests between `enter_io_state` and `leave_io_state`.
    io_state_readers: AtomicUsize,
    /// The disk's ordered workqueue, once created (an [`OrderedWorkQueue`]
    /// given up with `into_raw`; never replaced; destroyed when the disk is
    /// deleted or dropped).
    ordered_wq: AtomicPtr<bindings::workqueue_struct>,
    added: AtomicBool,
    deleted: AtomicBool,
}

// SAFETY: The C disk and tag set are thread-safe objects; `io_state` is only
// accessed under the protocol of the type invariant.
unsafe impl<T: DiskOps> Send for Disk<T> {}
// SAFETY: See above.
unsafe impl<T: DiskOps> Sync for Disk<T> {}

/// Numbering and name of a new disk: `<name_prefix><index>`.
pub(crate) struct DiskNumbers {
    pub(crate) name_prefix: &'static str,
    pub(crate) major: u32,
    pub(crate) first_minor: u32,
    pub(crate) minors: u32,
    pub(crate) index: u32,
    pub(crate) suppress_partscan: bool,
}

/// The device `T` behind a disk of this driver.
///
/// # Safety
///
/// `disk` is a disk created by `Disk::<T>::new` and added by `Disk::add`, and
/// its `free_disk` cannot run for as long as the result is used.
pub(in crate::glue) unsafe fn borrow_owner<'a, T: DiskOps>(
    disk: *mut bindings::gendisk,
) -> ArcBorrow<'a, T> {
    // SAFETY: Per the function contract, `disk` is live.
    let private = unsafe { (*disk).private_data };
    // SAFETY: `private_data` holds an `Arc<T>` from `Disk::add` until
    // `free_disk` (type invariant of `Disk`), which does not run while the
    // borrow is used (function contract); that is what `borrow` requires.
    unsafe { <Arc<T> as ForeignOwnable>::borrow(private) }
}

impl<T: DiskOps> Disk<T> {
    /// Allocates the tag set and the gendisk (not yet visible: see [`Self::add`]).
    pub(crate) fn new(
        numbers: DiskNumbers,
        io_state: T::IoState,
        queue_shape: QueueShape,
    ) -> Result<impl PinInit<Self, Error>> {
        let tag_set = TagSet::new::<T>(queue_shape)?;
        // Until the disk owns it, a failure frees the tag set.
        let tag_set = ScopeGuard::new_with_data(tag_set, |tag_set| {
            // SAFETY: Allocated above and not used by any disk (a disk that
            // used it was put below, before this guard runs).
            unsafe { tag_set.free() }
        });
        // Queue limits of a fresh, unbound device: loop.c's 2560-sector
        // maximum request, 512-byte blocks.
        let mut lim: bindings::queue_limits = pin_init::zeroed();
        lim.max_hw_sectors = 2560;
        // SAFETY: `__blk_mq_alloc_disk` needs an allocated tag set, valid
        // limits and a static lock class key: the tag set was allocated by
        // `TagSet::new`, `lim` is valid for the call, the key is static.
        let disk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                tag_set.as_raw(),
                &mut lim,
                ptr::null_mut(),
                kernel::static_lock_class!().as_ptr(),
            )
        })?;
        // Until `Self` owns it, a failure puts the disk (before the tag set
        // it was allocated on is freed: guards run in reverse order).
        let mut disk = ScopeGuard::new_with_data(disk, |disk| {
            // SAFETY: Allocated by `__blk_mq_alloc_disk` above and never
            // added, so this is the only reference.
            unsafe { bindings::put_disk(disk) };
        });
        // SAFETY: `disk` was just allocated and is not yet visible to anyone,
        // so nothing else accesses it.
        let gd = unsafe { &mut **disk };
        gd.major = numbers.major as c_int;
        gd.first_minor = numbers.first_minor as c_int;
        gd.minors = numbers.minors as c_int;
        gd.fops = &super::operations::DiskVTable::<T>::FOPS.0;
        gd.events = bindings::DISK_EVENT_MEDIA_CHANGE as u16;
        gd.event_flags = bindings::DISK_EVENT_FLAG_UEVENT as u16;
        if numbers.suppress_partscan {
            // SAFETY: `set_bit` needs a valid bitmap word: the disk's `state`.
            unsafe { bindings::set_bit(bindings::GD_SUPPRESS_PART_SCAN as c_ulong, &mut gd.state) };
        }
        let mut name = NullTerminatedFormatter::new(&mut gd.disk_name).ok_or(EINVAL)?;
        core::fmt::write(
            &mut name,
            format_args!("{}{}", numbers.name_prefix, numbers.index),
        )
        .map_err(|_| EINVAL)?;
        // SAFETY: `from_err_ptr` returned a non-error, so non-null, pointer.
        let gendisk = unsafe { NonNull::new_unchecked(disk.dismiss()) };
        let tag_set = tag_set.dismiss();
        // INVARIANT: `gendisk` was allocated on `tag_set` above, not added.
        Ok(try_pin_init!(Self {
            gendisk,
            tag_set,
            freeze_lock <- new_mutex!(()),
            io_state: UnsafeCell::new(io_state),
            serving: AtomicBool::new(false),
            io_state_readers: AtomicUsize::new(0),
            ordered_wq: AtomicPtr::new(ptr::null_mut()),
            added: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        }))
    }

    fn raw(&self) -> *mut bindings::gendisk {
        self.gendisk.as_ptr()
    }

    pub(super) fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: `gendisk` is valid (type invariant) and its queue is set at
        // allocation and lives as long as the disk.
        unsafe { (*self.raw()).queue }
    }

    /// Makes the disk visible (`/dev/<name>`, sysfs) with `owner` as the
    /// device its callbacks reach. The disk keeps `owner` alive until the last
    /// reference to the gendisk is gone (`free_disk`).
    pub(crate) fn add(&self, owner: Arc<T>) -> Result {
        let owner_ptr = owner.into_foreign();
        // SAFETY: The disk is valid and not yet added, so nobody reads
        // `private_data` concurrently.
        unsafe { (*self.raw()).private_data = owner_ptr };
        // SAFETY: As above, for the queue's `queuedata`: a borrowed copy of the
        // pointer, since the queue never outlives the disk's `private_data`.
        unsafe { (*self.queue()).queuedata = owner_ptr };
        // SAFETY: `device_add_disk` needs a fully set up gendisk: it is; no
        // parent, no extra groups.
        let ret =
            unsafe { bindings::device_add_disk(ptr::null_mut(), self.raw(), ptr::null_mut()) };
        if ret != 0 {
            // SAFETY: The disk was not added, so nothing reads `private_data`.
            unsafe { (*self.raw()).private_data = ptr::null_mut() };
            // SAFETY: `add` failed, so `free_disk` will never release the
            // owner: this gives back the `into_foreign` above.
            drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(owner_ptr) });
            return to_result(ret);
        }
        // INVARIANT: `private_data` holds the owner from now on.
        self.added.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes the disk from the system (`del_gendisk`); in-flight I/O is
    /// drained. The owner is released by `free_disk` once the last user of the
    /// gendisk is gone. Idempotent.
    pub(crate) fn delete(&self) {
        if !self.added.load(Ordering::Acquire) || self.deleted.swap(true, Ordering::AcqRel) {
            return;
        }
        // loop.c's order: delete, free the tag set, drop our reference.
        // SAFETY: The disk was added and is deleted only once (checked above).
        unsafe { bindings::del_gendisk(self.raw()) };
        // SAFETY: The disk that used the tag set is deleted, so no request
        // uses it any more; it is freed only here (`Drop` skips added disks).
        unsafe { self.tag_set.free() };
        // SAFETY: Drops the reference `__blk_mq_alloc_disk` gave us, once.
        unsafe { bindings::put_disk(self.raw()) };
        self.destroy_ordered_wq();
    }

    /// Creates the disk's ordered workqueue, unless it exists: a worker
    /// thread that runs the requests deferred with
    /// [`Dispatch::DeferInOrder`](super::Dispatch::DeferInOrder) one at a
    /// time, like loop.c's per-device worker. Created on the first bind, so
    /// that adding a device stays cheap.
    pub(crate) fn enable_ordered_work(&self, number: u32) -> Result {
        if !self.ordered_wq.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let wq = OrderedWorkQueue::new(number)?;
        // Dropping a queue that lost the race destroys it, never published.
        let raw = wq.into_raw();
        if self
            .ordered_wq
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `raw` came from `into_raw` above and was not published.
            drop(unsafe { OrderedWorkQueue::from_raw(NonNull::new_unchecked(raw)) });
        }
        Ok(())
    }

    /// The ordered workqueue, if created.
    pub(super) fn ordered_wq(&self) -> Option<NonNull<bindings::workqueue_struct>> {
        NonNull::new(self.ordered_wq.load(Ordering::Acquire))
    }

    /// Destroys the ordered workqueue once no request can reach it any more.
    fn destroy_ordered_wq(&self) {
        let raw = self.ordered_wq.swap(ptr::null_mut(), Ordering::AcqRel);
        if let Some(raw) = NonNull::new(raw) {
            // SAFETY: Published by `enable_ordered_work` from `into_raw`, and
            // taken out of `ordered_wq` here once. The disk is deleted (or was
            // never added), so no request queues work on it any more.
            drop(unsafe { OrderedWorkQueue::from_raw(raw) });
        }
    }

    /// Number of openers of the whole disk (partitions included).
    pub(crate) fn openers(&self) -> u32 {
        // SAFETY: `part0` is valid for the life of the disk; `bd_openers` is
        // an atomic counter, which `atomic_read` reads.
        let openers = unsafe { bindings::atomic_read(&raw mut (*(*self.raw()).part0).bd_openers) };
        u32::try_from(openers).unwrap_or(0)
    }

    /// Sets the capacity in sectors, silently (`set_capacity`).
    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: The disk is valid; `set_capacity` takes the bdev's size lock.
        unsafe { bindings::set_capacity(self.raw(), sectors) };
    }

    /// Sets the capacity and sends a change uevent (`loop_set_size`).
    pub(crate) fn set_capacity_and_notify(&self, sectors: u64) {
        // SAFETY: The disk is valid (type invariant).
        if !unsafe { bindings::set_capacity_and_notify(self.raw(), sectors) } {
            self.uevent_change();
        }
    }

    /// Marks the disk read-only or writable (`set_disk_ro`).
    pub(crate) fn set_read_only(&self, ro: bool) {
        // SAFETY: The disk is valid (type invariant).
        unsafe { bindings::set_disk_ro(self.raw(), ro) };
    }

    /// The queue's logical block size.
    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: The queue is valid; its limits are read racily as
        // `queue_logical_block_size` does.
        unsafe { ptr::read_volatile(&raw const (*self.queue()).limits.logical_block_size) }
    }

    pub(in crate::glue) fn kobj(&self) -> *mut bindings::kobject {
        // SAFETY: `part0` and its device are valid for the life of the disk.
        unsafe { &raw mut (*(*self.raw()).part0).bd_device.kobj }
    }

    /// Sends a change uevent for the whole disk.
    pub(crate) fn uevent_change(&self) {
        // SAFETY: `kobject_uevent` needs a registered kobject: the disk's is
        // (the disk is added).
        unsafe { bindings::kobject_uevent(self.kobj(), bindings::kobject_action_KOBJ_CHANGE) };
    }

    /// Holds back (or lets out again) the disk's uevents.
    pub(crate) fn suppress_uevents(&self, suppress: bool) {
        // SAFETY: The kobject is valid; the flag is a bitfield only written
        // by configuration paths, which are serialised by the device lock.
        unsafe { (*self.kobj()).set_uevent_suppress(u32::from(suppress)) };
    }

    /// Bumps the disk sequence number and drops the page cache of the device
    /// (`disk_force_media_change`), so a new binding never sees old data.
    pub(crate) fn force_media_change(&self) {
        // SAFETY: The disk is valid (type invariant).
        unsafe { bindings::disk_force_media_change(self.raw()) };
    }

    /// Sets or clears `GD_SUPPRESS_PART_SCAN`.
    pub(crate) fn set_partscan_suppressed(&self, suppressed: bool) {
        // SAFETY: The disk is valid (type invariant).
        let state = unsafe { &raw mut (*self.raw()).state };
        let bit = bindings::GD_SUPPRESS_PART_SCAN as c_ulong;
        if suppressed {
            // SAFETY: `state` is a bitmap word of the valid disk, changed
            // atomically by `set_bit`.
            unsafe { bindings::set_bit(bit, state) };
        } else {
            // SAFETY: As above, for `clear_bit`.
            unsafe { bindings::clear_bit(bit, state) };
        }
    }

    /// Drops and re-reads the partition table once (`bdev_disk_changed`).
    /// `open_mutex` is taken here unless the caller runs inside `->release`,
    /// where the block core holds it.
    pub(crate) fn reread_partitions(&self, open_mutex_held: OpenMutexHeld) -> Result {
        match open_mutex_held {
            OpenMutexHeld::No => self.with_open_mutex(|held| self.reread_partitions(held)),
            OpenMutexHeld::ByCaller(_) => {
                // SAFETY: `bdev_disk_changed` needs a valid disk with its
                // `open_mutex` held: the disk is valid (type invariant), and
                // the caller holds the mutex (the block core around
                // `->release`, or `with_open_mutex`), as the token witnesses.
                to_result(unsafe { bindings::bdev_disk_changed(self.raw(), false) })
            }
        }
    }

    /// Runs `f` with the disk's `open_mutex` held, so no open or release of
    /// the disk runs meanwhile.
    pub(crate) fn with_open_mutex<R>(&self, f: impl FnOnce(OpenMutexHeld) -> R) -> R {
        // SAFETY: The disk is valid (type invariant).
        let mutex = unsafe { &raw mut (*self.raw()).open_mutex };
        // SAFETY: `open_mutex` is a valid, initialised mutex of the disk.
        unsafe { bindings::mutex_lock(mutex) };
        let r = f(OpenMutexHeld::ByCaller(OpenMutexToken(())));
        // SAFETY: Locked above by this thread.
        unsafe { bindings::mutex_unlock(mutex) };
        r
    }

    /// Drops the page cache and sets the capacity to zero (`invalidate_disk`).
    pub(crate) fn invalidate(&self) {
        // SAFETY: The disk is valid (type invariant).
        unsafe { bindings::invalidate_disk(self.raw()) };
    }

    /// Publishes the I/O state of a device that starts serving requests (a
    /// bind). No freeze is needed: while the disk is not serving, no request
    /// reads the state.
    pub(crate) fn start_serving(&self, state: T::IoState) {
        let guard = self.freeze_lock.lock();
        if self.serving.load(Ordering::SeqCst) {
            drop(guard);
            *self.freeze().io_state() = state;
            return;
        }
        // SAFETY: `freeze_lock` is held and `serving` is clear: since the last
        // `stop_serving` drained them, no request has entered the state (type
        // invariant), so nobody reads it.
        unsafe { *self.io_state.get() = state };
        self.serving.store(true, Ordering::SeqCst);
    }

    /// Stops serving requests (an unbind) and replaces the I/O state once the
    /// requests that still read it are gone. Called on the last close, when
    /// none is expected; the wait only covers stragglers.
    pub(crate) fn stop_serving(&self, state: T::IoState) {
        let _guard = self.freeze_lock.lock();
        // SeqCst pairs with `enter_io_state`: either a request's increment is
        // seen here, or that request sees `serving` clear.
        self.serving.store(false, Ordering::SeqCst);
        while self.io_state_readers.load(Ordering::SeqCst) != 0 {
            fsleep(Delta::from_millis(1));
        }
        // SAFETY: `freeze_lock` is held, `serving` is clear and every request
        // that saw it set has left (type invariant).
        unsafe { *self.io_state.get() = state };
    }

    /// Lets a request read the I/O state, if the disk is serving. A request
    /// that got it must call `leave_io_state` after its last use of it.
    pub(super) fn enter_io_state(&self) -> Option<&T::IoState> {
        self.io_state_readers.fetch_add(1, Ordering::SeqCst);
        if self.serving.load(Ordering::SeqCst) {
            // SAFETY: Counted as a reader while `serving` is set: no writer
            // runs until `leave_io_state` (type invariant).
            Some(unsafe { &*self.io_state.get() })
        } else {
            self.io_state_readers.fetch_sub(1, Ordering::SeqCst);
            None
        }
    }

    /// The I/O state, for a request that entered it earlier (in another
    /// context: `queue_rq` enters, the work item reads and leaves).
    ///
    /// # Safety
    ///
    /// The caller entered the state with [`Self::enter_io_state`] and has not
    /// left it; the result is not used after [`Self::leave_io_state`].
    pub(super) unsafe fn entered_io_state(&self) -> &T::IoState {
        // SAFETY: The caller is counted as a reader that saw `serving` set
        // (function contract): no writer runs until it leaves.
        unsafe { &*self.io_state.get() }
    }

    /// Ends a request's use of the I/O state (see `enter_io_state`).
    pub(super) fn leave_io_state(&self) {
        self.io_state_readers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[pinned_drop]
impl<T: DiskOps> PinnedDrop for Disk<T> {
    fn drop(self: Pin<&mut Self>) {
        if !self.added.load(Ordering::Acquire) {
            // SAFETY: Never added, so nobody else holds the disk: this drops
            // the reference `__blk_mq_alloc_disk` gave us.
            unsafe { bindings::put_disk(self.raw()) };
            // SAFETY: The disk allocated on the tag set is put above.
            unsafe { self.tag_set.free() };
        }
        self.destroy_ordered_wq();
    }
}

/// Proof that the disk's `open_mutex` is held by the caller.
pub(crate) struct OpenMutexToken(pub(in crate::glue) ());

/// Whether `open_mutex` is held around a partition rescan.
pub(crate) enum OpenMutexHeld {
    No,
    ByCaller(OpenMutexToken),
}
