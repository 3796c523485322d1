// SPDX-License-Identifier: GPL-2.0

//! The configuration ioctls of a device: the dispatcher, and the ioctls on a
//! binding that need no file or status structure (LOOP_CLR_FD, capacity,
//! direct I/O, block size). Binding and change of backing file are in
//! [`super::bind`], status in [`super::status`]. Each runs under the device's
//! `control` lock.

use super::{
    binding::{
        Binding,
        IoState, //
    },
    LoopDevice,
    State, //
};
use crate::{
    glue::{
        task::capable_sys_admin,
        BlockDevice,
        OpenMode, //
    },
    uapi::{
        CompatLoopInfo,
        LoopConfig,
        LoopInfo,
        LoopInfo64,
        LOOP_CHANGE_FD,
        LOOP_CLR_FD,
        LOOP_CONFIGURE,
        LOOP_GET_STATUS,
        LOOP_GET_STATUS64,
        LOOP_SET_BLOCK_SIZE,
        LOOP_SET_CAPACITY,
        LOOP_SET_DIRECT_IO,
        LOOP_SET_FD,
        LOOP_SET_STATUS,
        LOOP_SET_STATUS64,
        LO_FLAGS_AUTOCLEAR,
        LO_FLAGS_DIRECT_IO, //
    },
};
use core::sync::atomic::Ordering;
use kernel::{
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
                self.set_status(bdev, mode, &info)?;
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
                self.set_status(bdev, mode, &info)?;
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
    pub(super) fn lock_bound(&self) -> Result<MutexGuard<'_, ()>> {
        let control = self.control.lock();
        if self.state() != State::Bound {
            return Err(ENXIO);
        }
        Ok(control)
    }

    /// Makes `binding` and `flags` what the request path of a bound device
    /// sees, with the queue frozen, since requests may be in flight.
    pub(super) fn publish(&self, binding: &Arc<Binding>, flags: u32) {
        self.publish_and(binding, flags, || {});
    }

    /// [`Self::publish`], running `while_frozen` before the queue thaws.
    pub(super) fn publish_and(
        &self,
        binding: &Arc<Binding>,
        flags: u32,
        while_frozen: impl FnOnce(),
    ) {
        let mut frozen = self.disk.freeze();
        *frozen.io_state() = IoState::bound(binding, flags);
        while_frozen();
        drop(frozen);
        self.flags.store(flags, Ordering::Release);
    }

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
