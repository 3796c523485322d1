// SPDX-License-Identifier: GPL-2.0

//! LOOP_SET_STATUS(64) and LOOP_GET_STATUS(64): offset, size limit, name and
//! flags of a binding.

use super::{
    binding::Binding,
    LoopDevice, //
};
use crate::{
    glue::{
        mq::OpenMutexHeld,
        BlockDevice,
        OpenMode, //
    },
    uapi::{
        LoopInfo64,
        LOOP_SET_STATUS_CLEARABLE_FLAGS,
        LOOP_SET_STATUS_SETTABLE_FLAGS,
        LO_CRYPT_NONE,
        LO_FLAGS_PARTSCAN,
        LO_KEY_SIZE,
        LO_NAME_SIZE, //
    },
};
use kernel::{
    prelude::*,
    sync::Arc, //
};

/// The offset, size limit and name a status structure asks for.
pub(super) struct StatusRequest {
    pub(super) offset: u64,
    pub(super) sizelimit: u64,
    pub(super) file_name: [u8; LO_NAME_SIZE],
}

/// loop.c's `loop_set_status_from_info`: validates a `loop_info64`.
pub(super) fn status_from_info(info: &LoopInfo64) -> Result<StatusRequest> {
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

/// Whether `info` changes where the device's data lies in the file.
fn moves_data(old: &Binding, info: &LoopInfo64) -> bool {
    old.offset != info.lo_offset || old.sizelimit != info.lo_sizelimit
}

impl LoopDevice {
    /// LOOP_SET_STATUS(64): offset, size limit, name and flags.
    ///
    /// A new offset or size limit moves the data under whoever holds the
    /// device exclusively (a mounted file system): EBUSY then, as for
    /// LOOP_SET_BLOCK_SIZE (upstream after 7.2 refuses it too; loop.c 7.2
    /// does not). A change of name or flags alone needs no claim.
    pub(super) fn set_status(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        info: &LoopInfo64,
    ) -> Result {
        // The claim comes before `control` (the order of `configure` and
        // `set_block_size`), so whether one is needed is decided under
        // `control`, which is dropped to claim and taken again.
        let mut claim = None;
        let (control, old) = loop {
            let control = self.lock_bound()?;
            let old = self.current_binding()?;
            if !moves_data(&old, info) || claim.is_some() || mode.exclusive() {
                break (control, old);
            }
            drop(control);
            claim = bdev.claim_unless_exclusive(mode)?;
        };
        let size_changed = moves_data(&old, info);
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
        flags = self.without_unusable_dio(&binding, flags);
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
        drop(claim);
        Ok(())
    }

    /// LOOP_GET_STATUS(64).
    pub(super) fn get_status(&self) -> Result<LoopInfo64> {
        let (binding, flags) = {
            let _control = self.lock_bound()?;
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
}
