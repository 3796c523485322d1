// SPDX-License-Identifier: GPL-2.0

//! The block device (`struct block_device`) an ioctl arrived on, its open
//! mode, and temporary claims of it (`bd_prepare_to_claim`).
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use core::ptr;
use kernel::{
    bindings,
    error::to_result,
    ffi::c_void,
    prelude::*, //
};

/// `BLK_OPEN_*` (blkdev.h): cast macros bindgen cannot emit.
const BLK_OPEN_WRITE: u32 = 1 << 1;
const BLK_OPEN_EXCL: u32 = 1 << 2;

/// The open mode of a block device (`blk_mode_t`).
#[derive(Clone, Copy)]
pub(crate) struct OpenMode(u32);

impl OpenMode {
    /// Wraps the mode the block core passed to a callback.
    pub(crate) fn from_raw(mode: bindings::blk_mode_t) -> Self {
        Self(mode)
    }

    /// Opened for writing.
    pub(crate) fn can_write(self) -> bool {
        self.0 & BLK_OPEN_WRITE != 0
    }

    /// Opened exclusively (`O_EXCL`): the opener holds the device.
    pub(crate) fn exclusive(self) -> bool {
        self.0 & BLK_OPEN_EXCL != 0
    }
}

/// The block device an ioctl was issued on.
///
/// # Invariants
///
/// `raw` is a live block device for as long as the handle exists.
pub(crate) struct BlockDevice {
    raw: *mut bindings::block_device,
}

impl BlockDevice {
    /// Wraps the block device of an ioctl callback.
    ///
    /// # Safety
    ///
    /// `raw` is a block device that stays live while the result exists.
    pub(in crate::glue) unsafe fn from_raw(raw: *mut bindings::block_device) -> Self {
        // INVARIANT: Per the function contract.
        Self { raw }
    }

    /// Claims the device for a configuration change, so that nobody can mount
    /// it meanwhile (`bd_prepare_to_claim`), unless the caller opened it
    /// exclusively and so holds it already. EBUSY if someone else holds it.
    pub(crate) fn claim_unless_exclusive(&self, mode: OpenMode) -> Result<Option<BdevClaim<'_>>> {
        if mode.exclusive() {
            return Ok(None);
        }
        // SAFETY: `raw` is the live block device of the current ioctl (type
        // invariant); the holder is a static of this module, unique to
        // rust_loop, and no holder ops are needed.
        to_result(unsafe { bindings::bd_prepare_to_claim(self.raw, claim_holder(), ptr::null()) })?;
        // INVARIANT: The claim was prepared above with `claim_holder()`.
        Ok(Some(BdevClaim { bdev: self }))
    }

    /// Writes back and drops the device's page cache.
    pub(crate) fn sync_and_invalidate(&self) {
        // SAFETY: `raw` is the live block device of the current ioctl (type
        // invariant), which is all `sync_blockdev` needs.
        unsafe { bindings::sync_blockdev(self.raw) };
        // SAFETY: As above, for `invalidate_bdev`.
        unsafe { bindings::invalidate_bdev(self.raw) };
    }
}

/// The unique holder of rust_loop's temporary block-device claims.
fn claim_holder() -> *mut c_void {
    static HOLDER: u8 = 0;
    ptr::from_ref(&HOLDER).cast_mut().cast()
}

/// A prepared claim, aborted on drop (`bd_abort_claiming`).
///
/// # Invariants
///
/// The claim of `bdev` was prepared with [`claim_holder`] and not yet aborted.
pub(crate) struct BdevClaim<'a> {
    bdev: &'a BlockDevice,
}

impl Drop for BdevClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: `bd_abort_claiming` needs a claim prepared with this holder,
        // which this one was (type invariant).
        unsafe { bindings::bd_abort_claiming(self.bdev.raw, claim_holder()) };
    }
}
