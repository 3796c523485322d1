// SPDX-License-Identifier: GPL-2.0

//! Queue limits updates (`queue_limits_start_update`/`_commit_update`),
//! the I/O path's withdrawal of write-zeroes and discard, and queue freezes
//! (`blk_mq_freeze_queue`) of a [`Disk`].
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use super::{
    gen_disk::Disk,
    DiskOps, //
};
use crate::glue::task::TaskFlagsScope;
use core::ptr;
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::MutexGuard, //
};

/// `BLK_FEAT_*` (blkdev.h): cast macros bindgen cannot emit.
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
const BLK_FEAT_FUA: u32 = 1 << 1;
const BLK_FEAT_ROTATIONAL: u32 = bindings::BLK_FEAT_ROTATIONAL;

impl<T: DiskOps> Disk<T> {
    /// Freezes the queue: no request is in flight while the guard lives, so
    /// the I/O state may be changed.
    pub(crate) fn freeze(&self) -> Frozen<'_, T> {
        let guard = self.freeze_lock.lock();
        let noio = TaskFlagsScope::no_io();
        // SAFETY: The queue is valid; it is unfrozen by `Frozen::drop`.
        unsafe { bindings::blk_mq_freeze_queue_nomemsave(self.queue()) };
        // INVARIANT: Frozen above, with `freeze_lock` held.
        Frozen {
            disk: self,
            _noio: noio,
            _guard: guard,
        }
    }

    /// Stops advertising write-zeroes, from the I/O path
    /// (`blk_queue_disable_write_zeroes`): for a device that found it
    /// unsupported while serving one. The next limits update sets it again.
    pub(crate) fn disable_write_zeroes(&self) {
        let q = self.queue();
        // SAFETY: The queue is valid. The block core lets a driver clear these
        // limits from its I/O and completion paths without `limits_lock` (sd
        // and dm do, with this very helper); readers read them racily, and a
        // volatile store is the `WRITE_ONCE` of such a field.
        unsafe { ptr::write_volatile(&raw mut (*q).limits.max_write_zeroes_sectors, 0) };
        // SAFETY: As above.
        unsafe { ptr::write_volatile(&raw mut (*q).limits.max_wzeroes_unmap_sectors, 0) };
    }

    /// Stops advertising discard, from the I/O path
    /// (`blk_queue_disable_discard`); see [`Self::disable_write_zeroes`].
    pub(crate) fn disable_discard(&self) {
        let q = self.queue();
        // SAFETY: As in `disable_write_zeroes`.
        unsafe { ptr::write_volatile(&raw mut (*q).limits.max_discard_sectors, 0) };
    }

    /// Begins a queue-limits update (takes the queue's `limits_lock`; take it
    /// before freezing, as the block core does).
    pub(crate) fn start_limits_update(&self) -> LimitsUpdate<'_, T> {
        let q = self.queue();
        // This is `queue_limits_start_update`, a `static inline`.
        // SAFETY: `limits_lock` is a valid, initialised mutex of the queue.
        unsafe { bindings::mutex_lock(&raw mut (*q).limits_lock) };
        // SAFETY: The queue is valid, and its limits are stable while
        // `limits_lock` is held.
        let limits = unsafe { ptr::read(&raw const (*q).limits) };
        // INVARIANT: `limits_lock` was taken above.
        LimitsUpdate {
            disk: self,
            limits,
            committed: false,
        }
    }
}

/// A frozen queue: no request is in flight.
///
/// # Invariants
///
/// The queue of `disk` is frozen by this guard, and `disk`'s `freeze_lock` is
/// held (`_guard`).
pub(crate) struct Frozen<'a, T: DiskOps> {
    disk: &'a Disk<T>,
    _noio: TaskFlagsScope,
    _guard: MutexGuard<'a, ()>,
}

impl<T: DiskOps> Frozen<'_, T> {
    /// Exclusive access to the I/O state: no request is in flight and no other
    /// freezer exists (`freeze_lock`).
    pub(crate) fn io_state(&mut self) -> &mut T::IoState {
        // SAFETY: `io_state` may be written while the queue is frozen with
        // `freeze_lock` held (type invariant of `Disk`), which this guard
        // witnesses (type invariant), and `&mut self` makes the access unique.
        unsafe { &mut *self.disk.io_state.get() }
    }
}

impl<T: DiskOps> Drop for Frozen<'_, T> {
    fn drop(&mut self) {
        // SAFETY: Frozen by `Disk::freeze` (type invariant), so this unfreeze
        // is balanced.
        unsafe { bindings::blk_mq_unfreeze_queue_nomemrestore(self.disk.queue()) };
    }
}

/// Queue limits being changed.
///
/// # Invariants
///
/// The queue's `limits_lock` is held until `commit` or the drop.
pub(crate) struct LimitsUpdate<'a, T: DiskOps> {
    disk: &'a Disk<T>,
    limits: bindings::queue_limits,
    committed: bool,
}

impl<T: DiskOps> LimitsUpdate<'_, T> {
    /// Logical and physical block size, and minimum I/O size.
    pub(crate) fn set_block_size(&mut self, size: u32) {
        self.limits.logical_block_size = size;
        self.limits.physical_block_size = size;
        self.limits.io_min = size;
    }

    /// A volatile write cache (flushes), with or without FUA.
    pub(crate) fn set_write_cache(&mut self, write_cache: bool, fua: bool) {
        self.limits.features &= !(BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA);
        if write_cache {
            self.limits.features |= BLK_FEAT_WRITE_CACHE;
            if fua {
                self.limits.features |= BLK_FEAT_FUA;
            }
        }
    }

    /// Whether the device is rotational (seeks are expensive).
    pub(crate) fn set_rotational(&mut self, rotational: bool) {
        self.limits.features &= !BLK_FEAT_ROTATIONAL;
        if rotational {
            self.limits.features |= BLK_FEAT_ROTATIONAL;
        }
    }

    /// Discard and write-zeroes support: `max_sectors == 0` disables both.
    pub(crate) fn set_discard(&mut self, max_sectors: u32, granularity: u32) {
        self.limits.max_hw_discard_sectors = max_sectors;
        self.limits.max_write_zeroes_sectors = max_sectors;
        self.limits.discard_granularity = if max_sectors != 0 { granularity } else { 0 };
    }

    /// Validates and applies the limits (EINVAL for an invalid block size).
    pub(crate) fn commit(mut self) -> Result {
        self.committed = true;
        // SAFETY: `queue_limits_commit_update` needs `limits_lock` held, which
        // it is (type invariant); it validates, applies and unlocks.
        to_result(unsafe {
            bindings::queue_limits_commit_update(self.disk.queue(), &mut self.limits)
        })
    }
}

impl<T: DiskOps> Drop for LimitsUpdate<'_, T> {
    fn drop(&mut self) {
        if !self.committed {
            // SAFETY: Taken in `start_limits_update` (type invariant), not
            // released by a commit.
            unsafe { bindings::mutex_unlock(&raw mut (*self.disk.queue()).limits_lock) };
        }
    }
}
