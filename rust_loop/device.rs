// SPDX-License-Identifier: GPL-2.0

//! One rloop device: its state machine, its ioctls and its request path.
//!
//! # Locking, and why the historical loop races cannot happen here
//!
//! - `control` (loop.c's `lo_mutex`) serialises configuration ioctls. `open`
//!   and `release` never take it: `open` reads only the atomic `state`, and
//!   `release` runs under the block core's `open_mutex` and unbinds an
//!   autoclear device without it. That is safe because `release` unbinds
//!   only when the last opener is gone, and an ioctl always has an opener.
//!   So a udev `open()` can never wait behind LOOP_CONFIGURE / SET_STATUS
//!   (the 2015 udev-vs-`losetup -P` deadlock and EBUSY).
//! - Partition rescans run after `control` is dropped, under `open_mutex`
//!   only, and an `EBUSY` (a partition held open by udev's probe) is retried
//!   a bounded number of times before it is logged.
//! - An unbound device has capacity 0, so reads of it end at EOF without
//!   reaching the driver; a request that still arrives fails quietly with
//!   `BLK_STS_IOERR` and never marks a page up to date with made-up data.
//!   Binding calls `disk_force_media_change`, which drops the device's page
//!   cache: a new binding never inherits what an unbound reader cached.
//! - The request path reads the binding lock-free from [`IoState`]. A bound
//!   device changes it only while the queue is frozen ([`Disk::freeze`]);
//!   bind and unbind need no freeze ([`Disk::start_serving`],
//!   [`Disk::stop_serving`]): an unbound device's requests never read it.

use crate::{
    fault::FaultInjector,
    ffi::{
        self, capable_sys_admin, BackingFile, BlkStatus, BlockDevice, Disk, DiskNumbers, DiskOps,
        Dispatch, LimitsUpdate, LoopAttr, OpenMode, OpenMutexHeld, OpenMutexToken, ReqOp, Request,
    },
    uapi::*,
};
use core::{
    fmt::Write as _,
    sync::atomic::{AtomicI64, AtomicU32, Ordering},
};
use kernel::{
    new_mutex,
    prelude::*,
    str::{BStr, Formatter},
    sync::{Arc, Mutex},
    time::{ClockSource, Monotonic},
    uaccess::{UserPtr, UserSlice},
};

/// How often a partition rescan that meets `EBUSY` is tried, and the pause
/// between tries. udev's probe holds a partition open only briefly.
const RESCAN_ATTEMPTS: u32 = 5;
const RESCAN_RETRY_DELAY_MS: u32 = 50;

/// How long a device that LOOP_CTL_GET_FREE handed out is kept for its
/// taker: parallel `losetup -f` callers each get their own device instead of
/// racing for one and seeing EBUSY. Binding ends the hold early.
const HAND_OUT_HOLD_NS: i64 = 2_000_000_000;

/// Writes larger than this run one at a time on the device's ordered
/// workqueue: the backing inode's lock serialises them anyway.
const LARGE_WRITE_BYTES: u64 = 64 * 1024;

/// The life cycle of a device (loop.c's `lo_state`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum State {
    Unbound = 0,
    Bound = 1,
    /// Unbinding on last close; opens fail with ENXIO.
    Rundown = 2,
    /// Being removed by LOOP_CTL_REMOVE; opens fail with ENXIO.
    Deleting = 3,
}

impl State {
    fn from_raw(raw: u32) -> Self {
        match raw {
            0 => State::Unbound,
            1 => State::Bound,
            2 => State::Rundown,
            _ => State::Deleting,
        }
    }
}

/// What a device is bound to. Immutable: a change publishes a new one.
pub(crate) struct Binding {
    file: BackingFile,
    offset: u64,
    sizelimit: u64,
    file_name: [u8; LO_NAME_SIZE],
    /// The backing mapping's gfp mask before we restricted it.
    saved_gfp_mask: u32,
    min_dio_size: u32,
}

impl Binding {
    /// Device size in 512-byte sectors (loop.c's `lo_calculate_size`).
    fn size_sectors(&self, file: &BackingFile) -> u64 {
        let size = file.size().unwrap_or(0);
        let mut size = size.saturating_sub(self.offset);
        if self.sizelimit > 0 && self.sizelimit < size {
            size = self.sizelimit;
        }
        size >> 9
    }

    fn with_file(&self, file: BackingFile) -> Self {
        Self {
            file,
            offset: self.offset,
            sizelimit: self.sizelimit,
            file_name: self.file_name,
            saved_gfp_mask: self.saved_gfp_mask,
            min_dio_size: self.min_dio_size,
        }
    }
}

/// What the request path needs, read without locks (see [`Disk`]).
pub(crate) struct IoState {
    binding: Option<Arc<Binding>>,
    direct_io: bool,
    read_only: bool,
}

impl IoState {
    const fn unbound() -> Self {
        Self {
            binding: None,
            direct_io: false,
            read_only: false,
        }
    }

    fn bound(binding: &Arc<Binding>, flags: u32) -> Self {
        Self {
            binding: Some(binding.clone()),
            direct_io: flags & LO_FLAGS_DIRECT_IO != 0,
            read_only: flags & LO_FLAGS_READ_ONLY != 0,
        }
    }
}

/// The offset, size limit and name a status structure asks for.
struct StatusRequest {
    offset: u64,
    sizelimit: u64,
    file_name: [u8; LO_NAME_SIZE],
}

/// loop.c's `loop_set_status_from_info`: validates a `loop_info64`.
fn status_from_info(info: &LoopInfo64) -> Result<StatusRequest> {
    if info.lo_encrypt_key_size as usize > LO_KEY_SIZE || info.lo_encrypt_type != LO_CRYPT_NONE {
        return Err(EINVAL);
    }
    if info.lo_offset > i64::MAX as u64 || info.lo_sizelimit > i64::MAX as u64 {
        return Err(EOVERFLOW);
    }
    let mut file_name = info.lo_file_name;
    file_name[LO_NAME_SIZE - 1] = 0;
    Ok(StatusRequest {
        offset: info.lo_offset,
        sizelimit: info.lo_sizelimit,
        file_name,
    })
}

/// A backing file must be readable, and writable if it was opened for writing.
fn check_backing_file(file: &BackingFile) -> Result {
    if !file.can_read() || (file.is_writable() && !file.can_write()) {
        return Err(EINVAL);
    }
    Ok(())
}

/// One `/dev/rloopN`.
#[pin_data]
pub(crate) struct LoopDevice {
    number: u32,
    /// `part_shift != 0` (module parameter `max_part`): always scan partitions.
    forced_partscan: bool,
    state: AtomicU32,
    /// When GET_FREE last handed this unbound device out (monotonic ns; 0:
    /// not held).
    handed_out_at: AtomicI64,
    /// Effective `LO_FLAGS_*`.
    flags: AtomicU32,
    /// Serialises configuration ioctls (never taken by open or release).
    #[pin]
    control: Mutex<()>,
    /// The current binding, for status queries and sysfs; the request path
    /// reads its own copy in [`IoState`].
    #[pin]
    binding: Mutex<Option<Arc<Binding>>>,
    fault: FaultInjector,
    #[pin]
    disk: Disk<LoopDevice>,
}

impl LoopDevice {
    /// Creates device `number` and makes `/dev/rloop<number>` appear.
    pub(crate) fn create(
        number: u32,
        major: u32,
        part_shift: u32,
        queue_depth: u32,
    ) -> Result<Arc<Self>> {
        let numbers = DiskNumbers {
            major,
            first_minor: number << part_shift,
            minors: 1 << part_shift,
            index: number,
            suppress_partscan: part_shift == 0,
        };
        let device = Arc::pin_init(
            try_pin_init!(Self {
                number,
                forced_partscan: part_shift != 0,
                state: AtomicU32::new(State::Unbound as u32),
                handed_out_at: AtomicI64::new(0),
                flags: AtomicU32::new(0),
                control <- new_mutex!(()),
                binding <- new_mutex!(None),
                fault: FaultInjector::new(),
                disk <- Disk::new(numbers, IoState::unbound(), queue_depth)?,
            }),
            GFP_KERNEL,
        )?;
        device.disk.add(device.clone())?;
        Ok(device)
    }

    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    fn state(&self) -> State {
        State::from_raw(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, state: State) {
        self.state.store(state as u32, Ordering::Release);
    }

    fn flags(&self) -> u32 {
        self.flags.load(Ordering::Acquire)
    }

    /// LOOP_CTL_GET_FREE's test: unbound, and not held for an earlier taker.
    pub(crate) fn is_free(&self) -> bool {
        let handed_out_at = self.handed_out_at.load(Ordering::Acquire);
        let held = handed_out_at != 0 && Monotonic::ktime_get() - handed_out_at < HAND_OUT_HOLD_NS;
        self.state() == State::Unbound && !held
    }

    /// Holds the device for the taker GET_FREE just gave it to.
    pub(crate) fn hand_out(&self) {
        self.handed_out_at
            .store(Monotonic::ktime_get(), Ordering::Release);
    }

    /// LOOP_CTL_REMOVE: marks an unbound, unopened device as being deleted.
    /// Done under `open_mutex`, so no open can slip in between the check and
    /// the state change.
    pub(crate) fn begin_removal(&self) -> Result {
        self.disk.with_open_mutex(|_| {
            if self.disk.openers() > 0 {
                return Err(EBUSY);
            }
            self.state
                .compare_exchange(
                    State::Unbound as u32,
                    State::Deleting as u32,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(|_| ())
                .map_err(|_| EBUSY)
        })
    }

    /// Removes the disk from the system. With `unbind`, a bound device with no
    /// opener is unbound first (module unload).
    pub(crate) fn remove(&self, unbind: bool) {
        if unbind && self.state() == State::Bound {
            self.disk.with_open_mutex(|held| self.unbind(held));
        }
        self.disk.delete();
    }

    // ----------------------------------------------------------------------
    // Open and release: no control lock (see the module documentation).
    // ----------------------------------------------------------------------

    fn rescan_partitions(&self, held: OpenMutexHeld) {
        let mut held = Some(held);
        let mut result = Ok(());
        for attempt in 1..=RESCAN_ATTEMPTS {
            // Only the release path holds `open_mutex`; it never retries
            // (no partition can be open during the last close).
            let how = held.take().unwrap_or(OpenMutexHeld::No);
            let by_caller = matches!(how, OpenMutexHeld::ByCaller(_));
            result = self.disk.rescan_partitions(how);
            if result != Err(EBUSY) || by_caller || attempt == RESCAN_ATTEMPTS {
                break;
            }
            ffi::msleep(RESCAN_RETRY_DELAY_MS);
        }
        if let Err(e) = result {
            let name = self.file_name();
            pr_warn!(
                "rloop{}: partition scan of rloop{} ({}) failed (rc={})\n",
                self.number,
                self.number,
                BStr::from_bytes(until_nul(&name)),
                e.to_errno()
            );
        }
    }

    fn file_name(&self) -> [u8; LO_NAME_SIZE] {
        self.binding
            .lock()
            .as_ref()
            .map_or([0; LO_NAME_SIZE], |b| b.file_name)
    }

    /// Tears the binding down (loop.c's `__loop_clr_fd`). Runs with
    /// `open_mutex` held and no opener left.
    fn unbind(&self, held: OpenMutexHeld) {
        let Some(binding) = self.binding.lock().take() else {
            self.set_state(State::Unbound);
            return;
        };
        self.disk.stop_serving(IoState::unbound());

        let mut limits = self.disk.start_limits_update();
        limits.set_block_size(512);
        limits.set_discard(0, 0);
        limits.set_write_cache(false, false);
        // 512-byte blocks with no discard are always valid limits.
        let _ = limits.commit();

        self.disk.invalidate();
        // The group is always present while bound.
        let _ = self.disk.set_sysfs_group(false);
        self.disk.uevent_change();
        binding.file.restore_gfp_mask(binding.saved_gfp_mask);
        self.disk.force_media_change();
        // Drops every partition; capacity is 0 so none comes back.
        self.rescan_partitions(held);
        self.flags.store(0, Ordering::Release);
        self.fault.disarm();
        if !self.forced_partscan {
            self.disk.set_partscan_suppressed(true);
        }
        self.set_state(State::Unbound);
    }

    // ----------------------------------------------------------------------
    // Binding: LOOP_SET_FD / LOOP_CONFIGURE.
    // ----------------------------------------------------------------------

    /// The limits for a binding: block size, write cache, discard.
    fn fill_limits(
        &self,
        limits: &mut LimitsUpdate<'_, Self>,
        binding: &Binding,
        flags: u32,
        block_size: u32,
    ) {
        let block_size = match block_size {
            0 if flags & LO_FLAGS_DIRECT_IO != 0 => binding.min_dio_size.max(512),
            0 => 512,
            size => size,
        };
        limits.set_block_size(block_size);
        let write_cache = binding.file.can_fsync() && flags & LO_FLAGS_READ_ONLY == 0;
        limits.set_write_cache(write_cache, write_cache);
        limits.set_rotational(false);
        // Discard punches holes in a regular file; block-device backing files
        // are not offered discard.
        if binding.file.is_regular() && binding.file.can_fallocate() {
            limits.set_discard(u32::MAX >> 9, binding.file.fs_block_size());
        } else {
            limits.set_discard(0, 0);
        }
    }

    /// Whether direct I/O can serve this binding at the current block size.
    fn can_use_dio(&self, binding: &Binding) -> bool {
        let min = binding.min_dio_size.max(1);
        binding.file.can_direct_io()
            && self.disk.logical_block_size() >= min
            && binding.offset % u64::from(min) == 0
    }

    /// The rloop chain below `file` must not reach this device, and every
    /// rloop in it must be bound (loop.c's `loop_validate_file`).
    fn validate_backing_file(&self, file: &BackingFile) -> Result {
        let mut current = file.clone();
        while let Some(lower) = current.as_rloop_device::<Self>() {
            if core::ptr::eq(&*lower, self) {
                return Err(EBADF);
            }
            if lower.state() != State::Bound {
                return Err(EINVAL);
            }
            let lower_file = lower.binding.lock().as_ref().map(|b| b.file.clone());
            current = lower_file.ok_or(EINVAL)?;
        }
        if !current.is_regular() && !current.is_block_device() {
            return Err(EINVAL);
        }
        Ok(())
    }

    fn configure(&self, bdev: &BlockDevice, mode: OpenMode, config: &LoopConfig) -> Result {
        let file = BackingFile::from_fd(config.fd)?;
        check_backing_file(&file)?;
        // Keep anyone from mounting the device while it is being set up,
        // unless the caller opened it exclusively already.
        let _claim = bdev.claim_unless_exclusive(mode)?;

        let control = self.control.lock();
        if self.state() != State::Unbound {
            return Err(EBUSY);
        }
        self.validate_backing_file(&file)?;
        let info = &config.info;
        if info.lo_flags & !LOOP_CONFIGURE_SETTABLE_FLAGS != 0 {
            return Err(EINVAL);
        }
        let status = status_from_info(info)?;
        self.disk.enable_ordered_work(self.number)?;

        let mut flags = info.lo_flags;
        if !file.is_writable() || !mode.can_write() || !file.can_write() {
            flags |= LO_FLAGS_READ_ONLY;
        }
        if file.opened_direct() {
            flags |= LO_FLAGS_DIRECT_IO;
        }
        if self.forced_partscan {
            flags |= LO_FLAGS_PARTSCAN;
        }
        let binding = Arc::new(
            Binding {
                saved_gfp_mask: file.gfp_mask(),
                min_dio_size: file.min_dio_size(),
                file,
                offset: status.offset,
                sizelimit: status.sizelimit,
                file_name: status.file_name,
            },
            GFP_KERNEL,
        )?;
        binding.file.restrict_gfp_mask();

        self.disk.suppress_uevents(true);
        // Drops whatever an unbound reader left in the page cache.
        self.disk.force_media_change();
        self.disk.set_read_only(flags & LO_FLAGS_READ_ONLY != 0);

        let mut limits = self.disk.start_limits_update();
        self.fill_limits(&mut limits, &binding, flags, config.block_size);
        if let Err(e) = limits.commit() {
            binding.file.restore_gfp_mask(binding.saved_gfp_mask);
            self.disk.suppress_uevents(false);
            return Err(e);
        }
        // Start from what is on disk, as loop.c does; a failure here does not
        // stop the bind.
        let _ = binding.file.fsync(false);
        if flags & LO_FLAGS_DIRECT_IO != 0 && !self.can_use_dio(&binding) {
            flags &= !LO_FLAGS_DIRECT_IO;
        }
        // Sysfs attributes are a convenience; loop.c binds without them too.
        let _ = self.disk.set_sysfs_group(true);
        self.disk.start_serving(IoState::bound(&binding, flags));
        self.flags.store(flags, Ordering::Release);
        let sectors = binding.size_sectors(&binding.file);
        *self.binding.lock() = Some(binding);
        self.set_state(State::Bound);
        self.handed_out_at.store(0, Ordering::Release);
        // Capacity last: a reader that sees the device's size finds it
        // bound (loop.c sets it first, and such a read fails with EIO).
        self.disk.set_capacity(sectors);

        let partscan = flags & LO_FLAGS_PARTSCAN != 0;
        if partscan {
            self.disk.set_partscan_suppressed(false);
        }
        self.disk.suppress_uevents(false);
        self.disk.uevent_change();
        drop(control);

        if partscan {
            self.rescan_partitions(OpenMutexHeld::No);
        }
        Ok(())
    }

    /// Makes `binding` and `flags` what the request path of a bound device
    /// sees, with the queue frozen, since requests may be in flight.
    fn publish(&self, binding: &Arc<Binding>, flags: u32) {
        self.publish_and(binding, flags, || {});
    }

    /// [`Self::publish`], running `while_frozen` before the queue thaws.
    fn publish_and(&self, binding: &Arc<Binding>, flags: u32, while_frozen: impl FnOnce()) {
        let mut frozen = self.disk.freeze();
        *frozen.io_state() = IoState::bound(binding, flags);
        while_frozen();
        drop(frozen);
        self.flags.store(flags, Ordering::Release);
    }

    fn current_binding(&self) -> Result<Arc<Binding>> {
        self.binding.lock().clone().ok_or(ENXIO)
    }

    // ----------------------------------------------------------------------
    // The other ioctls.
    // ----------------------------------------------------------------------

    fn clear_fd(&self) -> Result {
        let _control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        // Lazy detach: the last close unbinds (see `release`).
        self.flags.fetch_or(LO_FLAGS_AUTOCLEAR, Ordering::AcqRel);
        if self.disk.openers() == 1 {
            self.set_state(State::Rundown);
        }
        Ok(())
    }

    fn set_status(&self, bdev: &BlockDevice, info: &LoopInfo64) -> Result {
        let control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        let old = self.current_binding()?;
        let size_changed = old.offset != info.lo_offset || old.sizelimit != info.lo_sizelimit;
        if size_changed {
            bdev.sync_and_invalidate();
        }
        let status = status_from_info(info)?;
        let binding = Arc::new(
            Binding {
                offset: status.offset,
                sizelimit: status.sizelimit,
                file_name: status.file_name,
                ..old.with_file(old.file.clone())
            },
            GFP_KERNEL,
        )?;
        let old_flags = self.flags();
        let partscan = old_flags & LO_FLAGS_PARTSCAN == 0 && info.lo_flags & LO_FLAGS_PARTSCAN != 0;
        let mut flags = old_flags & !LOOP_SET_STATUS_CLEARABLE_FLAGS;
        flags |= info.lo_flags & LOOP_SET_STATUS_SETTABLE_FLAGS;
        if flags & LO_FLAGS_DIRECT_IO != 0 && !self.can_use_dio(&binding) {
            flags &= !LO_FLAGS_DIRECT_IO;
        }
        // The request path reads only the file, offset, size limit and flags:
        // when none changes it keeps its binding (which may then carry an
        // older file name) and no queue freeze is needed.
        if size_changed || flags != old_flags {
            self.publish(&binding, flags);
        }
        *self.binding.lock() = Some(binding.clone());
        if partscan {
            self.disk.set_partscan_suppressed(false);
        }
        if size_changed {
            self.disk
                .set_capacity_and_notify(binding.size_sectors(&binding.file));
        }
        drop(control);
        if partscan {
            self.rescan_partitions(OpenMutexHeld::No);
        }
        Ok(())
    }

    fn get_status(&self) -> Result<LoopInfo64> {
        let (binding, flags) = {
            let _control = self.control.lock();
            if self.state() != State::Bound {
                return Err(ENXIO);
            }
            (self.current_binding()?, self.flags())
        };
        let mut info = LoopInfo64::zeroed();
        info.lo_number = self.number;
        info.lo_offset = binding.offset;
        info.lo_sizelimit = binding.sizelimit;
        info.lo_flags = flags;
        info.lo_file_name = binding.file_name;
        let attrs = binding.file.attrs()?;
        info.lo_device = attrs.device;
        info.lo_inode = attrs.inode;
        info.lo_rdevice = attrs.rdevice;
        Ok(info)
    }

    fn change_fd(&self, fd: u32) -> Result {
        let file = BackingFile::from_fd(fd)?;
        check_backing_file(&file)?;
        self.disk.suppress_uevents(true);
        let result = self.change_fd_locked(file);
        self.disk.suppress_uevents(false);
        if let Ok(true) = result {
            self.rescan_partitions(OpenMutexHeld::No);
        }
        // loop.c reports a change even when the swap failed.
        self.disk.uevent_change();
        result.map(|_| ())
    }

    /// Swaps the backing file; returns whether partitions need a rescan.
    fn change_fd_locked(&self, file: BackingFile) -> Result<bool> {
        let _control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        let flags = self.flags();
        if flags & LO_FLAGS_READ_ONLY == 0 {
            return Err(EINVAL);
        }
        self.validate_backing_file(&file)?;
        let old = self.current_binding()?;
        if old.size_sectors(&file) != old.size_sectors(&old.file) {
            return Err(EINVAL);
        }
        let _ = file.fsync(false);
        self.disk.force_media_change();
        // The same file opened again shares the old one's restricted mask.
        let saved_gfp_mask = if file.same_mapping(&old.file) {
            old.saved_gfp_mask
        } else {
            file.gfp_mask()
        };
        let mut binding = old.with_file(file);
        binding.saved_gfp_mask = saved_gfp_mask;
        binding.min_dio_size = binding.file.min_dio_size();
        let mut flags = flags;
        if binding.file.opened_direct() {
            flags |= LO_FLAGS_DIRECT_IO;
        }
        if flags & LO_FLAGS_DIRECT_IO != 0 && !self.can_use_dio(&binding) {
            flags &= !LO_FLAGS_DIRECT_IO;
        }
        let binding = Arc::new(binding, GFP_KERNEL)?;
        // As loop.c: the masks change hands while no request runs.
        self.publish_and(&binding, flags, || {
            old.file.restore_gfp_mask(old.saved_gfp_mask);
            binding.file.restrict_gfp_mask();
        });
        *self.binding.lock() = Some(binding);
        Ok(flags & LO_FLAGS_PARTSCAN != 0)
    }

    fn set_capacity(&self) -> Result {
        let _control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        let binding = self.current_binding()?;
        self.disk
            .set_capacity_and_notify(binding.size_sectors(&binding.file));
        Ok(())
    }

    fn set_direct_io(&self, enable: bool) -> Result {
        let _control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        let flags = self.flags();
        if (flags & LO_FLAGS_DIRECT_IO != 0) == enable {
            return Ok(());
        }
        let binding = self.current_binding()?;
        if enable {
            if !self.can_use_dio(&binding) {
                return Err(EINVAL);
            }
            // Buffered writes must reach the file before direct reads bypass
            // the page cache.
            let _ = binding.file.fsync(false);
        }
        let flags = if enable {
            flags | LO_FLAGS_DIRECT_IO
        } else {
            flags & !LO_FLAGS_DIRECT_IO
        };
        self.publish(&binding, flags);
        Ok(())
    }

    fn set_block_size(&self, bdev: &BlockDevice, mode: OpenMode, size: usize) -> Result {
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let _control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        let size = u32::try_from(size).map_err(|_| EINVAL)?;
        if size == self.disk.logical_block_size() {
            return Ok(());
        }
        bdev.sync_and_invalidate();
        let binding = self.current_binding()?;
        let flags = self.flags();
        let mut limits = self.disk.start_limits_update();
        self.fill_limits(&mut limits, &binding, flags, size);
        let mut frozen = self.disk.freeze();
        limits.commit()?;
        // One freeze covers the limits and, if the new block size rules out
        // direct I/O, the switch to buffered I/O.
        if flags & LO_FLAGS_DIRECT_IO != 0 && !self.can_use_dio(&binding) {
            let flags = flags & !LO_FLAGS_DIRECT_IO;
            *frozen.io_state() = IoState::bound(&binding, flags);
            self.flags.store(flags, Ordering::Release);
        }
        Ok(())
    }

    // ----------------------------------------------------------------------
    // ioctl argument plumbing.
    // ----------------------------------------------------------------------

    fn read_user<T: kernel::transmute::FromBytes>(arg: usize) -> Result<T> {
        UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
            .reader()
            .read::<T>()
    }

    fn write_user<T: kernel::transmute::AsBytes>(arg: usize, value: &T) -> Result {
        UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
            .writer()
            .write(value)
    }

    fn set_status_legacy(&self, bdev: &BlockDevice, arg: usize, compat: bool) -> Result {
        let mut info = LoopInfo64::zeroed();
        if compat {
            let old = Self::read_user::<CompatLoopInfo>(arg)?;
            info.lo_number = old.lo_number as u32;
            info.lo_device = u64::from(old.lo_device);
            info.lo_inode = u64::from(old.lo_inode);
            info.lo_rdevice = u64::from(old.lo_rdevice);
            info.lo_offset = i64::from(old.lo_offset) as u64;
            info.lo_flags = old.lo_flags as u32;
            info.lo_file_name = old.lo_name;
        } else {
            let old = Self::read_user::<LoopInfo>(arg)?;
            info.lo_number = old.lo_number as u32;
            info.lo_device = old.lo_device;
            info.lo_inode = old.lo_inode;
            info.lo_rdevice = old.lo_rdevice;
            info.lo_offset = i64::from(old.lo_offset) as u64;
            info.lo_flags = old.lo_flags as u32;
            info.lo_file_name = old.lo_name;
        }
        // The legacy structure has no size limit and no encryption fields
        // worth keeping: loop.c leaves them zero.
        self.set_status(bdev, &info)
    }

    fn get_status_legacy(&self, arg: usize, compat: bool) -> Result {
        if arg == 0 {
            return Err(EINVAL);
        }
        let info = self.get_status()?;
        let offset = i32::try_from(info.lo_offset).map_err(|_| EOVERFLOW)?;
        if compat {
            let narrow = |v: u64| u16::try_from(v).map_err(|_| EOVERFLOW);
            let old = CompatLoopInfo {
                lo_number: info.lo_number as i32,
                lo_device: narrow(info.lo_device)?,
                padding1: 0,
                lo_inode: u32::try_from(info.lo_inode).map_err(|_| EOVERFLOW)?,
                lo_rdevice: narrow(info.lo_rdevice)?,
                padding2: 0,
                lo_offset: offset,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: info.lo_flags as i32,
                lo_name: info.lo_file_name,
                lo_encrypt_key: [0; LO_KEY_SIZE],
                lo_init: [0; 2],
                reserved: [0; 4],
            };
            return Self::write_user(arg, &old);
        }
        let old = LoopInfo {
            lo_number: info.lo_number as i32,
            padding1: 0,
            lo_device: info.lo_device,
            lo_inode: info.lo_inode,
            lo_rdevice: info.lo_rdevice,
            lo_offset: offset,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: info.lo_flags as i32,
            lo_name: info.lo_file_name,
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
            padding2: [0; 4],
        };
        Self::write_user(arg, &old)
    }
}

impl DiskOps for LoopDevice {
    type IoState = IoState;

    fn disk(&self) -> &Disk<Self> {
        &self.disk
    }

    fn open(&self) -> Result {
        match self.state() {
            State::Rundown | State::Deleting => Err(ENXIO),
            State::Unbound | State::Bound => Ok(()),
        }
    }

    fn release(&self, disk_openers: u32, open_mutex: OpenMutexToken) {
        if disk_openers > 0 {
            return;
        }
        if self.flags() & LO_FLAGS_AUTOCLEAR != 0 {
            let _ = self.state.compare_exchange(
                State::Bound as u32,
                State::Rundown as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        if self.state() == State::Rundown {
            self.unbind(OpenMutexHeld::ByCaller(open_mutex));
        }
    }

    fn ioctl(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
        compat: bool,
    ) -> Result<i32> {
        let write_or_admin = || {
            if mode.can_write() || capable_sys_admin() {
                Ok(())
            } else {
                Err(EPERM)
            }
        };
        match cmd {
            LOOP_SET_FD => {
                // loop.c keeps the low 32 bits (`loop_config.fd` is a u32).
                let config = LoopConfig {
                    fd: arg as u32,
                    block_size: 0,
                    info: LoopInfo64::zeroed(),
                    reserved: [0; 8],
                };
                self.configure(bdev, mode, &config)?;
            }
            LOOP_CONFIGURE => {
                let config = Self::read_user::<LoopConfig>(arg)?;
                self.configure(bdev, mode, &config)?;
            }
            LOOP_CHANGE_FD => self.change_fd(arg as u32)?,
            LOOP_CLR_FD => self.clear_fd()?,
            LOOP_SET_STATUS => {
                // loop.c's compat path skips the permission check; so do we.
                if !compat {
                    write_or_admin()?;
                }
                self.set_status_legacy(bdev, arg, compat)?;
            }
            LOOP_GET_STATUS => self.get_status_legacy(arg, compat)?,
            LOOP_SET_STATUS64 => {
                write_or_admin()?;
                let info = Self::read_user::<LoopInfo64>(arg)?;
                self.set_status(bdev, &info)?;
            }
            LOOP_GET_STATUS64 => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.get_status()?;
                Self::write_user(arg, &info)?;
            }
            LOOP_SET_CAPACITY => {
                write_or_admin()?;
                self.set_capacity()?;
            }
            LOOP_SET_DIRECT_IO => {
                write_or_admin()?;
                self.set_direct_io(arg != 0)?;
            }
            LOOP_SET_BLOCK_SIZE => {
                write_or_admin()?;
                self.set_block_size(bdev, mode, arg)?;
            }
            // loop.c's compat path does not know it (user space sees ENOTTY).
            _ if compat => return Err(ENOIOCTLCMD),
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    fn queue_rq(&self, io: &IoState, rq: &Request) -> Dispatch {
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
        if rq.op() == ReqOp::Write && rq.bytes() > LARGE_WRITE_BYTES {
            Dispatch::DeferInOrder
        } else {
            Dispatch::Defer
        }
    }

    fn handle_request(&self, io: &IoState, rq: &Request) -> BlkStatus {
        let Some(binding) = io.binding.as_ref() else {
            rq.set_quiet();
            return ffi::BLK_STS_IOERR;
        };
        let op = rq.op();
        if self.fault.should_fail(op) {
            return ffi::BLK_STS_IOERR;
        }
        match execute(binding, io, rq, op) {
            Ok(()) => ffi::BLK_STS_OK,
            // As loop.c: reads and writes report the backing file's error
            // (ENOSPC stays ENOSPC for the writer); the others EIO, unless
            // the file does not support them.
            Err(e) if matches!(op, ReqOp::Read | ReqOp::Write) => ffi::error_status(e),
            Err(e) if e == ffi::eopnotsupp() => ffi::BLK_STS_NOTSUPP,
            Err(_) => ffi::BLK_STS_IOERR,
        }
    }

    fn show(&self, attr: LoopAttr, out: &mut Formatter<'_>) -> Result {
        if attr == LoopAttr::FaultInject {
            return self.fault.show(out);
        }
        let flags = self.flags();
        let Some(binding) = self.binding.lock().clone() else {
            return Err(ENXIO);
        };
        let flag = |bit: u32| u8::from(flags & bit != 0);
        match attr {
            LoopAttr::BackingFile => {
                let mut path = KVec::from_elem(0u8, kernel::page::PAGE_SIZE - 1, GFP_KERNEL)?;
                let len = binding.file.write_path(&mut path)?;
                write_lossy(out, &path[..len]).and_then(|()| writeln!(out))
            }
            LoopAttr::Offset => writeln!(out, "{}", binding.offset),
            LoopAttr::Sizelimit => writeln!(out, "{}", binding.sizelimit),
            LoopAttr::Autoclear => writeln!(out, "{}", flag(LO_FLAGS_AUTOCLEAR)),
            LoopAttr::Partscan => writeln!(out, "{}", flag(LO_FLAGS_PARTSCAN)),
            LoopAttr::Dio => writeln!(out, "{}", flag(LO_FLAGS_DIRECT_IO)),
            LoopAttr::FaultInject => Ok(()),
        }
        .map_err(|_| EINVAL)
    }

    fn store(&self, attr: LoopAttr, input: &[u8]) -> Result {
        match attr {
            LoopAttr::FaultInject => self.fault.configure(input),
            _ => Err(EPERM),
        }
    }
}

/// How far a read or write got.
enum Transfer {
    Complete,
    /// A read reached the end of the backing file (a file shrunk under the
    /// device) after this many bytes.
    EndOfFile(u64),
}

/// Reads or writes a whole request at the binding's offset. A short read goes
/// on until the file returns no data (network and FUSE files may return less
/// than asked mid-file); a short write is an error (loop.c counts it as a
/// success and loses the rest).
fn transfer(binding: &Binding, rq: &Request, op: ReqOp, direct: bool) -> Result<Transfer> {
    let file = &binding.file;
    let pos = file_position(binding, rq)?;
    let write = op == ReqOp::Write;
    let mut outcome = Transfer::Complete;
    let result = rq.for_each_bio(write, |segment, offset| {
        let mut done = 0;
        while done < segment.len() {
            let at = pos.saturating_add(offset + done as u64);
            let step = if write {
                file.write_from(segment, at, direct)?
            } else {
                file.read_into(segment, at, direct)?
            };
            done += step;
            if done == segment.len() {
                break;
            }
            if write {
                return Err(EIO);
            }
            if step == 0 {
                outcome = Transfer::EndOfFile(offset + done as u64);
                return Err(EIO);
            }
        }
        Ok(())
    });
    match result {
        Err(e) if matches!(outcome, Transfer::Complete) => Err(e),
        _ => Ok(outcome),
    }
}

/// Ends a read that met the end of the backing file as loop.c does: the
/// sectors read complete, the rest reads as zeroes and fails with EIO.
fn fail_past_end_of_file(rq: &Request, valid_bytes: u64) -> Result {
    rq.end_leading_bytes(valid_bytes & !(ffi::SECTOR_SIZE - 1));
    rq.for_each_bio(false, |segment, _| {
        segment.zero_after(0);
        Ok(())
    })?;
    Err(EIO)
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
            Transfer::EndOfFile(valid_bytes) => fail_past_end_of_file(rq, valid_bytes),
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
        ReqOp::Discard => file.fallocate(
            ffi::FALLOC_FL_PUNCH_HOLE | ffi::FALLOC_FL_KEEP_SIZE,
            file_position(binding, rq)?,
            rq.bytes(),
        ),
        ReqOp::WriteZeroes => {
            let mode = if rq.no_unmap() {
                ffi::FALLOC_FL_ZERO_RANGE
            } else {
                ffi::FALLOC_FL_PUNCH_HOLE
            };
            let pos = file_position(binding, rq)?;
            file.fallocate(mode | ffi::FALLOC_FL_KEEP_SIZE, pos, rq.bytes())
        }
        ReqOp::Other => Err(ffi::eopnotsupp()),
    }
}

/// The bytes of a NUL-terminated buffer before the NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Writes bytes as text, with `?` for anything that is not valid UTF-8.
fn write_lossy(out: &mut Formatter<'_>, bytes: &[u8]) -> core::fmt::Result {
    for chunk in bytes.utf8_chunks() {
        out.write_str(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            out.write_char('?')?;
        }
    }
    Ok(())
}
