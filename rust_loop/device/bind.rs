// SPDX-License-Identifier: GPL-2.0

//! Binding a device to a backing file (LOOP_SET_FD, LOOP_CONFIGURE), the
//! queue limits a binding gets, and the change of backing file
//! (LOOP_CHANGE_FD).

use super::{
    binding::{
        check_backing_file,
        Binding,
        IoState, //
    },
    status::status_from_info,
    sysfs::LOOP_ATTR_GROUP,
    LoopDevice,
    State, //
};
use crate::{
    glue::{
        mq::{
            LimitsUpdate,
            OpenMutexHeld, //
        },
        BackingFile,
        BlockDevice,
        OpenMode, //
    },
    uapi::{
        LoopConfig,
        LOOP_CONFIGURE_SETTABLE_FLAGS,
        LO_FLAGS_DIRECT_IO,
        LO_FLAGS_PARTSCAN,
        LO_FLAGS_READ_ONLY, //
    },
};
use core::sync::atomic::Ordering;
use kernel::{
    block::SECTOR_SHIFT,
    prelude::*,
    sync::Arc, //
};

impl LoopDevice {
    /// The limits for a binding: block size, write cache, discard.
    pub(super) fn fill_limits(
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
            limits.set_discard(u32::MAX >> SECTOR_SHIFT, binding.file.fs_block_size());
        } else {
            limits.set_discard(0, 0);
        }
    }

    /// LOOP_SET_FD and LOOP_CONFIGURE: binds the device to `config.fd`.
    pub(super) fn configure(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        config: &LoopConfig,
    ) -> Result {
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
        flags = self.without_unusable_dio(&binding, flags);
        // Sysfs attributes are a convenience; loop.c binds without them too.
        let _ = self.disk.add_sysfs_group(&LOOP_ATTR_GROUP);
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

    /// LOOP_CHANGE_FD: swaps the file of a read-only device for one of the
    /// same size.
    pub(super) fn change_fd(&self, fd: u32) -> Result {
        let file = BackingFile::from_fd(fd)?;
        check_backing_file(&file)?;
        self.disk.suppress_uevents(true);
        let result = self.swap_backing_file(file);
        self.disk.suppress_uevents(false);
        if let Ok(true) = result {
            self.rescan_partitions(OpenMutexHeld::No);
        }
        // loop.c reports a change even when the swap failed.
        self.disk.uevent_change();
        result.map(|_| ())
    }

    /// Swaps the backing file under the `control` lock; returns whether
    /// partitions need a rescan.
    fn swap_backing_file(&self, file: BackingFile) -> Result<bool> {
        let _control = self.lock_bound()?;
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
        let flags = self.without_unusable_dio(&binding, flags);
        let binding = Arc::new(binding, GFP_KERNEL)?;
        // As loop.c: the masks change hands while no request runs.
        self.publish_and(&binding, flags, || {
            old.file.restore_gfp_mask(old.saved_gfp_mask);
            binding.file.restrict_gfp_mask();
        });
        *self.binding.lock() = Some(binding);
        Ok(flags & LO_FLAGS_PARTSCAN != 0)
    }
}
