// SPDX-License-Identifier: GPL-2.0

//! What a device is bound to ([`Binding`]), what its request path reads
//! ([`IoState`]), and the checks a backing file must pass.

use super::{
    LoopDevice,
    State, //
};
use crate::{
    glue::BackingFile,
    uapi::{
        LO_FLAGS_DIRECT_IO,
        LO_FLAGS_READ_ONLY,
        LO_NAME_SIZE, //
    },
};
use kernel::{
    block::SECTOR_SHIFT,
    prelude::*,
    sync::Arc, //
};

/// What a device is bound to. Immutable: a change publishes a new one.
pub(crate) struct Binding {
    pub(super) file: BackingFile,
    pub(super) offset: u64,
    pub(super) sizelimit: u64,
    pub(super) file_name: [u8; LO_NAME_SIZE],
    /// The backing mapping's gfp mask before we restricted it.
    pub(super) saved_gfp_mask: u32,
    pub(super) min_dio_size: u32,
}

impl Binding {
    /// Device size in 512-byte sectors (loop.c's `lo_calculate_size`).
    pub(super) fn size_sectors(&self, file: &BackingFile) -> u64 {
        let size = file.size().unwrap_or(0);
        let mut size = size.saturating_sub(self.offset);
        if self.sizelimit > 0 && self.sizelimit < size {
            size = self.sizelimit;
        }
        size >> SECTOR_SHIFT
    }

    /// The same binding with another file.
    pub(super) fn with_file(&self, file: BackingFile) -> Self {
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

/// What the request path needs, read without locks (see [`crate::glue::mq::Disk`]).
pub(crate) struct IoState {
    pub(super) binding: Option<Arc<Binding>>,
    pub(super) direct_io: bool,
    pub(super) read_only: bool,
}

impl IoState {
    pub(super) const fn unbound() -> Self {
        Self {
            binding: None,
            direct_io: false,
            read_only: false,
        }
    }

    pub(super) fn bound(binding: &Arc<Binding>, flags: u32) -> Self {
        Self {
            binding: Some(binding.clone()),
            direct_io: flags & LO_FLAGS_DIRECT_IO != 0,
            read_only: flags & LO_FLAGS_READ_ONLY != 0,
        }
    }
}

/// A backing file must be readable, and writable if it was opened for writing.
pub(super) fn check_backing_file(file: &BackingFile) -> Result {
    if !file.can_read() || (file.is_writable() && !file.can_write()) {
        return Err(EINVAL);
    }
    Ok(())
}

impl LoopDevice {
    /// Whether direct I/O can serve this binding at the current block size.
    pub(super) fn can_use_dio(&self, binding: &Binding) -> bool {
        let min = binding.min_dio_size.max(1);
        binding.file.can_direct_io()
            && self.disk.logical_block_size() >= min
            && binding.offset % u64::from(min) == 0
    }

    /// `flags` without `LO_FLAGS_DIRECT_IO` if direct I/O cannot serve
    /// `binding` at the current block size: asking for direct I/O is a wish,
    /// which falls back to buffered I/O.
    pub(super) fn without_unusable_dio(&self, binding: &Binding, flags: u32) -> u32 {
        if flags & LO_FLAGS_DIRECT_IO != 0 && !self.can_use_dio(binding) {
            flags & !LO_FLAGS_DIRECT_IO
        } else {
            flags
        }
    }

    /// The rloop chain below `file` must not reach this device, and every
    /// rloop in it must be bound (loop.c's `loop_validate_file`).
    pub(super) fn validate_backing_file(&self, file: &BackingFile) -> Result {
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

    /// The current binding (ENXIO when unbound).
    pub(super) fn current_binding(&self) -> Result<Arc<Binding>> {
        self.binding.lock().clone().ok_or(ENXIO)
    }
}
