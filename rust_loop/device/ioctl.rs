// SPDX-License-Identifier: GPL-2.0

//! The configuration ioctls of a device: binding (LOOP_SET_FD,
//! LOOP_CONFIGURE), status, change of backing file, capacity, direct I/O and
//! block size. Each runs under the device's `control` lock.

use super::{
    binding::{
        check_backing_file,
        Binding,
        IoState, //
    },
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
        task::capable_sys_admin,
        BackingFile, BlockDevice, OpenMode,
    },
    uapi::{
        CompatLoopInfo,
        LoopConfig,
        LoopInfo,
        LoopInfo64,
        LOOP_CHANGE_FD,
        LOOP_CLR_FD,
        LOOP_CONFIGURE,
        LOOP_CONFIGURE_SETTABLE_FLAGS,
        LOOP_GET_STATUS,
        LOOP_GET_STATUS64,
        LOOP_SET_BLOCK_SIZE,
        LOOP_SET_CAPACITY,
        LOOP_SET_DIRECT_IO,
        LOOP_SET_FD,
        LOOP_SET_STATUS,
        LOOP_SET_STATUS64,
        LOOP_SET_STATUS_CLEARABLE_FLAGS,
        LOOP_SET_STATUS_SETTABLE_FLAGS,
        LO_CRYPT_NONE,
        LO_FLAGS_AUTOCLEAR,
        LO_FLAGS_DIRECT_IO,
        LO_FLAGS_PARTSCAN,
        LO_FLAGS_READ_ONLY,
        LO_KEY_SIZE,
        LO_NAME_SIZE, //
    },
};
use core::sync::atomic::Ordering;
use kernel::{
    block::SECTOR_SHIFT,
    prelude::*,
    sync::{
        Arc,
        MutexGuard, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

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

fn read_user<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .reader()
        .read::<T>()
}

fn write_user<T: AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .writer()
        .write(value)
}

impl LoopDevice {
    /// Serves an ioctl on the device ([`crate::glue::DiskOps::ioctl`]).
    pub(super) fn handle_ioctl(
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
                let config = read_user::<LoopConfig>(arg)?;
                self.configure(bdev, mode, &config)?;
            }
            LOOP_CHANGE_FD => self.change_fd(arg as u32)?,
            LOOP_CLR_FD => self.clear_fd()?,
            LOOP_SET_STATUS => {
                // loop.c's compat path skips the permission check; so do we.
                if !compat {
                    write_or_admin()?;
                }
                let info = if compat {
                    LoopInfo64::from_compat(&read_user::<CompatLoopInfo>(arg)?)
                } else {
                    LoopInfo64::from_legacy(&read_user::<LoopInfo>(arg)?)
                };
                self.set_status(bdev, &info)?;
            }
            LOOP_GET_STATUS => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.get_status()?;
                if compat {
                    write_user(arg, &CompatLoopInfo::from_info64(&info)?)?;
                } else {
                    write_user(arg, &LoopInfo::from_info64(&info)?)?;
                }
            }
            LOOP_SET_STATUS64 => {
                write_or_admin()?;
                let info = read_user::<LoopInfo64>(arg)?;
                self.set_status(bdev, &info)?;
            }
            LOOP_GET_STATUS64 => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.get_status()?;
                write_user(arg, &info)?;
            }
            LOOP_SET_CAPACITY => {
                write_or_admin()?;
                self.update_capacity()?;
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

    /// Takes the `control` lock of a bound device (ENXIO if it is not bound):
    /// how every ioctl on a binding starts.
    fn lock_bound(&self) -> Result<MutexGuard<'_, ()>> {
        let control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        Ok(control)
    }

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
            limits.set_discard(u32::MAX >> SECTOR_SHIFT, binding.file.fs_block_size());
        } else {
            limits.set_discard(0, 0);
        }
    }

    /// LOOP_SET_FD and LOOP_CONFIGURE: binds the device to `config.fd`.
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

    // ----------------------------------------------------------------------
    // The other ioctls.
    // ----------------------------------------------------------------------

    /// LOOP_CLR_FD: detaches the device on its last close.
    fn clear_fd(&self) -> Result {
        let _control = self.lock_bound()?;
        // Lazy detach: the last close unbinds (see `release`).
        self.flags.fetch_or(LO_FLAGS_AUTOCLEAR, Ordering::AcqRel);
        if self.disk.openers() == 1 {
            self.set_state(State::Rundown);
        }
        Ok(())
    }

    /// LOOP_SET_STATUS(64): offset, size limit, name and flags.
    fn set_status(&self, bdev: &BlockDevice, info: &LoopInfo64) -> Result {
        let control = self.lock_bound()?;
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
        Ok(())
    }

    /// LOOP_GET_STATUS(64).
    fn get_status(&self) -> Result<LoopInfo64> {
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

    /// LOOP_CHANGE_FD: swaps the file of a read-only device for one of the
    /// same size.
    fn change_fd(&self, fd: u32) -> Result {
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

    /// LOOP_SET_CAPACITY: the capacity follows the backing file's size.
    fn update_capacity(&self) -> Result {
        let _control = self.lock_bound()?;
        let binding = self.current_binding()?;
        self.disk
            .set_capacity_and_notify(binding.size_sectors(&binding.file));
        Ok(())
    }

    /// LOOP_SET_DIRECT_IO.
    fn set_direct_io(&self, enable: bool) -> Result {
        let _control = self.lock_bound()?;
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

    /// LOOP_SET_BLOCK_SIZE.
    fn set_block_size(&self, bdev: &BlockDevice, mode: OpenMode, size: usize) -> Result {
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let _control = self.lock_bound()?;
        // As loop.c, which stores the argument in the 32-bit
        // `logical_block_size` before validating it: 2^32 + 512 is 512.
        let size = size as u32;
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
        let usable = self.without_unusable_dio(&binding, flags);
        if usable != flags {
            *frozen.io_state() = IoState::bound(&binding, usable);
            self.flags.store(usable, Ordering::Release);
        }
        Ok(())
    }
}
