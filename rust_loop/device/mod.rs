// SPDX-License-Identifier: GPL-2.0

//! One rloop device: its state machine and what it is bound to.
//!
//! - [`binding`]: what a device is bound to, and the checks a backing file
//!   must pass.
//! - [`ioctl`]: the configuration ioctls' dispatcher, and LOOP_CLR_FD,
//!   capacity, direct I/O and block size.
//! - [`bind`]: binding (LOOP_SET_FD, LOOP_CONFIGURE), a binding's queue
//!   limits, the change of backing file (LOOP_CHANGE_FD).
//! - [`status`]: LOOP_SET_STATUS(64), LOOP_GET_STATUS(64).
//! - [`io`]: request execution against the backing file; it imports no
//!   configuration code.
//! - [`sysfs`]: the `loop/` files.
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
//!
//! Lock order: `control` or the block core's `open_mutex` (never both:
//! rescans run after `control` is dropped), then the queue's `limits_lock`,
//! then the disk's freeze lock; `binding` is held only briefly, with no other
//! lock taken under it.

mod bind;
mod binding;
mod io;
mod ioctl;
mod status;
mod sysfs;

use crate::{
    fault::FaultInjector,
    glue::{
        mq::{
            BlkStatus,
            Disk,
            DiskNumbers,
            DiskOps,
            Dispatch,
            OpenMutexHeld,
            OpenMutexToken,
            QueueShape,
            Request, //
        },
        BlockDevice, OpenMode,
    },
    numbers::UnboundNumbers,
    uapi::{
        LO_FLAGS_AUTOCLEAR,
        LO_NAME_SIZE, //
    },
};
use binding::{
    Binding,
    IoState, //
};
use core::sync::atomic::{
    AtomicI64,
    AtomicU32,
    Ordering, //
};
use kernel::{
    new_mutex,
    prelude::*,
    str::BStr,
    sync::{
        Arc,
        Mutex, //
    },
    time::{
        delay::fsleep,
        ClockSource,
        Delta,
        Monotonic, //
    },
};

/// How often a partition rescan that meets `EBUSY` is tried, and the pause
/// between tries. udev's probe holds a partition open only briefly.
const RESCAN_ATTEMPTS: u32 = 5;
const RESCAN_RETRY_DELAY: Delta = Delta::from_millis(50);

/// How long a device that LOOP_CTL_GET_FREE handed out is kept for its
/// taker: parallel `losetup -f` callers each get their own device instead of
/// racing for one and seeing EBUSY. Binding ends the hold early.
const HAND_OUT_HOLD_NS: i64 = 2_000_000_000;

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

/// One `/dev/rloopN`.
#[pin_data]
pub(crate) struct LoopDevice {
    number: u32,
    /// `rloop`, or `loop` in drop-in mode: the disk is `<name_prefix><number>`.
    name_prefix: &'static str,
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
    /// The registry's set of unbound devices, which [`Self::set_state`]
    /// keeps current for GET_FREE.
    unbound: Arc<UnboundNumbers>,
    #[pin]
    disk: Disk<LoopDevice>,
}

impl LoopDevice {
    /// Creates device `number` and makes `/dev/<name_prefix><number>` appear.
    pub(crate) fn create(
        name_prefix: &'static str,
        number: u32,
        major: u32,
        part_shift: u32,
        queue_shape: QueueShape,
        unbound: Arc<UnboundNumbers>,
    ) -> Result<Arc<Self>> {
        let numbers = DiskNumbers {
            name_prefix,
            major,
            first_minor: number << part_shift,
            minors: 1 << part_shift,
            index: number,
            suppress_partscan: part_shift == 0,
        };
        let device = Arc::pin_init(
            try_pin_init!(Self {
                number,
                name_prefix,
                forced_partscan: part_shift != 0,
                state: AtomicU32::new(State::Unbound as u32),
                handed_out_at: AtomicI64::new(0),
                flags: AtomicU32::new(0),
                control <- new_mutex!(()),
                binding <- new_mutex!(None),
                fault: FaultInjector::new(),
                unbound,
                disk <- Disk::new(numbers, IoState::unbound(), queue_shape)?,
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
        // The state is read again under the set's lock (see
        // `UnboundNumbers::update`), so racing changes leave it right.
        self.unbound
            .update(self.number, || self.state() == State::Unbound);
    }

    /// Whether no file is bound (GET_FREE's index follows this).
    pub(crate) fn is_unbound(&self) -> bool {
        self.state() == State::Unbound
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

    /// Rescans the partitions, retrying while udev holds one (`EBUSY`), and
    /// logs a final failure.
    fn rescan_partitions(&self, held: OpenMutexHeld) {
        let mut held = Some(held);
        let mut result = Ok(());
        for attempt in 1..=RESCAN_ATTEMPTS {
            // Only the release path holds `open_mutex`; it never retries
            // (no partition can be open during the last close).
            let how = held.take().unwrap_or(OpenMutexHeld::No);
            let by_caller = matches!(how, OpenMutexHeld::ByCaller(_));
            result = self.disk.reread_partitions(how);
            if result != Err(EBUSY) || by_caller || attempt == RESCAN_ATTEMPTS {
                break;
            }
            fsleep(RESCAN_RETRY_DELAY);
        }
        if let Err(e) = result {
            let name = self.file_name();
            pr_warn!(
                "{}{}: partition scan of {}{} ({}) failed (rc={})\n",
                self.name_prefix,
                self.number,
                self.name_prefix,
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
        self.disk.remove_sysfs_group(&sysfs::LOOP_ATTR_GROUP);
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
}

/// Open and release take no control lock (see the module documentation);
/// ioctls are in [`ioctl`], requests in [`io`].
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
        self.handle_ioctl(bdev, mode, cmd, arg, compat)
    }

    fn queue_rq(&self, io: &IoState, rq: &Request) -> Dispatch {
        self.dispatch(io, rq)
    }

    fn handle_request(&self, io: &IoState, rq: &Request) -> BlkStatus {
        self.run_request(io, rq)
    }
}

/// The bytes of a NUL-terminated buffer before the NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}
