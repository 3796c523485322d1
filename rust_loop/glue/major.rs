// SPDX-License-Identifier: GPL-2.0

//! A block major (`__register_blkdev`) with its probe hook: the block core
//! calls it when a node of the major without a disk is opened (the legacy
//! autoload hook loop.c uses too).
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h)

use core::marker::PhantomData;
use kernel::{
    bindings,
    prelude::*, //
};

/// The driver logic behind the probe hook.
pub(crate) trait BlockProbe: 'static {
    /// A node with device number `devt` of the major, which has no disk, is
    /// being opened: the driver may create the disk now.
    fn probe(devt: u32);
}

/// A registered block major whose probe hook calls `P`.
///
/// # Invariants
///
/// `major` is registered under `name` with `probe_callback::<P>` until drop.
pub(crate) struct BlockMajor<P: BlockProbe> {
    major: u32,
    name: &'static CStr,
    _probe: PhantomData<P>,
}

impl<P: BlockProbe> BlockMajor<P> {
    /// Registers `major` (0: allocate one).
    pub(crate) fn register(major: u32, name: &'static CStr) -> Result<Self> {
        // SAFETY: `__register_blkdev` needs a name and a probe function that
        // stay valid while registered: `name` is a static C string, and
        // `probe_callback` is module text, which outlives the registration
        // (dropped before the module goes).
        let ret = unsafe {
            bindings::__register_blkdev(major, name.as_char_ptr(), Some(Self::probe_callback))
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        let major = if major == 0 { ret as u32 } else { major };
        // INVARIANT: Registered above.
        Ok(Self {
            major,
            name,
            _probe: PhantomData,
        })
    }

    /// The major number.
    pub(crate) fn number(&self) -> u32 {
        self.major
    }

    /// # Safety
    ///
    /// Only called by the block core, for a device number of the registered major.
    unsafe extern "C" fn probe_callback(devt: bindings::dev_t) {
        P::probe(devt);
    }
}

impl<P: BlockProbe> Drop for BlockMajor<P> {
    fn drop(&mut self) {
        // SAFETY: Registered by `register` with this name (type invariant).
        unsafe { bindings::unregister_blkdev(self.major, self.name.as_char_ptr()) };
    }
}
