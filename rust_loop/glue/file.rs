// SPDX-License-Identifier: GPL-2.0

//! A backing file: its attributes, and reads, writes, syncs and fallocates at
//! explicit positions (`vfs_iocb_iter_read`/`_write`, `vfs_fsync`,
//! `vfs_fallocate`).
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use crate::glue::mq::{
    gen_disk,
    DiskOps, //
    RequestData,
};
use core::{
    mem::MaybeUninit,
    ptr, //
};
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    ffi::{
        c_char,
        c_int, //
    },
    fs::{
        File,
        LocalFile, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        ArcBorrow, //
    },
};

/// `FMODE_*` (fs.h): cast macros bindgen cannot emit.
const FMODE_WRITE: u32 = 1 << 1;
const FMODE_WRITER: u32 = 1 << 16;
const FMODE_CAN_ODIRECT: u32 = 1 << 22;

/// `FALLOC_FL_*` (uapi/linux/falloc.h, outside the bindings).
pub(crate) const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub(crate) const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub(crate) const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// The Linux `dev_t` encoding of user space's 64-bit `huge_encode_dev`.
fn huge_encode_dev(dev: u32) -> u64 {
    let minor_mask = (1 << bindings::MINORBITS) - 1;
    let major = u64::from(dev >> bindings::MINORBITS);
    let minor = u64::from(dev & minor_mask);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Attributes of a backing file, read with `vfs_getattr`.
pub(crate) struct FileAttrs {
    pub(crate) device: u64,
    pub(crate) inode: u64,
    pub(crate) rdevice: u64,
}

/// A file that backs an rloop device.
#[derive(Clone)]
pub(crate) struct BackingFile {
    file: ARef<File>,
}

impl BackingFile {
    /// Takes a reference to the file behind descriptor `fd` of the caller.
    pub(crate) fn from_fd(fd: u32) -> Result<Self> {
        let local = LocalFile::fget(fd).map_err(|_| EBADF)?;
        // SAFETY: The file is only used for I/O at explicit positions, never
        // through `f_pos`, so no `fdget_pos` is needed.
        let file = unsafe { LocalFile::assume_no_fdget_pos(local) };
        Ok(Self { file })
    }

    pub(in crate::glue) fn raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: `raw()` is a valid file for as long as we hold the reference,
        // and `f_mapping->host` is set for every opened file and never changes.
        unsafe { (*(*self.raw()).f_mapping).host }
    }

    /// The file type bits of the inode's mode (`S_IFMT`).
    fn file_type(&self) -> u32 {
        // SAFETY: See `inode`; `i_mode` is immutable for the file type bits.
        let mode = unsafe { (*self.inode()).i_mode };
        u32::from(mode) & bindings::S_IFMT
    }

    /// A regular file (`S_ISREG`).
    pub(crate) fn is_regular(&self) -> bool {
        self.file_type() == bindings::S_IFREG
    }

    /// A block device node (`S_ISBLK`).
    pub(crate) fn is_block_device(&self) -> bool {
        self.file_type() == bindings::S_IFBLK
    }

    fn f_mode(&self) -> u32 {
        // SAFETY: `f_mode` is set at open and read-only afterwards.
        unsafe { (*self.raw()).f_mode }
    }

    /// Opened for writing.
    pub(crate) fn is_writable(&self) -> bool {
        self.f_mode() & FMODE_WRITE != 0
    }

    /// Opened for writing with write access to its mount held for as long as
    /// it is open (`FMODE_WRITER`: regular files, not device nodes).
    pub(in crate::glue) fn has_mount_write_access(&self) -> bool {
        self.f_mode() & FMODE_WRITER != 0
    }

    /// The file was opened with `O_DIRECT`.
    pub(crate) fn opened_direct(&self) -> bool {
        self.file.flags() & kernel::fs::file::flags::O_DIRECT != 0
    }

    pub(crate) fn can_direct_io(&self) -> bool {
        self.f_mode() & FMODE_CAN_ODIRECT != 0
    }

    fn fops(&self) -> &bindings::file_operations {
        // SAFETY: Every opened file has valid, static `f_op`.
        unsafe { &*(*self.raw()).f_op }
    }

    pub(crate) fn can_read(&self) -> bool {
        self.fops().read_iter.is_some()
    }

    pub(crate) fn can_write(&self) -> bool {
        self.fops().write_iter.is_some()
    }

    pub(crate) fn can_fsync(&self) -> bool {
        self.fops().fsync.is_some()
    }

    pub(crate) fn can_fallocate(&self) -> bool {
        self.fops().fallocate.is_some()
    }

    /// The rloop device this file is, if it is an open rloop block device.
    pub(crate) fn as_rloop_device<T: DiskOps>(&self) -> Option<ArcBorrow<'_, T>> {
        if !self.is_block_device() {
            return None;
        }
        // SAFETY: For a block device file the inode is a bdev inode, which is
        // what `I_BDEV` requires.
        let bdev = unsafe { bindings::I_BDEV(self.inode()) };
        // SAFETY: The open file keeps the block device and its disk alive.
        let disk = unsafe { (*bdev).bd_disk };
        // SAFETY: As above: `disk` is live, and its `fops` are static.
        let owner = unsafe { (*(*disk).fops).owner };
        // A disk whose operations belong to this module is one of ours,
        // and the module has one `DiskOps` type (`LoopDevice`). The
        // operations' address cannot tell: a `const` has no fixed one.
        if !ptr::eq(owner, &raw const bindings::__this_module) {
            return None;
        }
        // SAFETY: `disk` is a disk of this module, so of `Disk<T>` (one
        // `DiskOps` type per module, see above), added since it is open; the
        // open file keeps it from `free_disk`.
        Some(unsafe { gen_disk::borrow_owner::<T>(disk) })
    }

    /// Size in bytes (`i_size` for block devices, `STATX_SIZE` for files).
    pub(crate) fn size(&self) -> Result<u64> {
        if self.is_block_device() {
            // SAFETY: The inode is valid (see `inode`); `i_size` of a bdev inode
            // is updated with the bdev's size lock; a racy read is what
            // `i_size_read` does on 64-bit.
            let size = unsafe { ptr::read_volatile(&raw const (*self.inode()).i_size) };
            return Ok(u64::try_from(size).unwrap_or(0));
        }
        let stat = self.getattr(bindings::STATX_SIZE)?;
        Ok(u64::try_from(stat.size).unwrap_or(0))
    }

    fn getattr(&self, mask: u32) -> Result<bindings::kstat> {
        let mut stat = MaybeUninit::<bindings::kstat>::zeroed();
        // SAFETY: The file is valid while we hold the reference.
        let path = unsafe { &raw const (*self.raw()).__bindgen_anon_1.f_path };
        // SAFETY: `vfs_getattr_nosec` needs a valid path and a writable
        // `kstat`: `f_path` of an open file is valid, and `stat` is writable
        // memory of the right type.
        to_result(unsafe { bindings::vfs_getattr_nosec(path, stat.as_mut_ptr(), mask, 0) })?;
        // SAFETY: Zero is a valid `kstat`, and `vfs_getattr_nosec` filled it.
        Ok(unsafe { stat.assume_init() })
    }

    /// Device and inode numbers for LOOP_GET_STATUS.
    pub(crate) fn attrs(&self) -> Result<FileAttrs> {
        let stat = self.getattr(bindings::STATX_INO)?;
        Ok(FileAttrs {
            device: huge_encode_dev(stat.dev),
            inode: stat.ino,
            rdevice: huge_encode_dev(stat.rdev),
        })
    }

    /// The smallest direct-I/O size and alignment the backing storage needs.
    pub(crate) fn min_dio_size(&self) -> u32 {
        if let Ok(stat) = self.getattr(bindings::STATX_DIOALIGN) {
            if stat.result_mask & bindings::STATX_DIOALIGN != 0 && stat.dio_offset_align != 0 {
                return stat.dio_offset_align;
            }
        }
        // SAFETY: The inode and its super block are valid while the file is open.
        let sb_bdev = unsafe { (*(*self.inode()).i_sb).s_bdev };
        if !sb_bdev.is_null() {
            // SAFETY: `s_bdev` of a mounted super block is a live block device.
            return unsafe { (*(*sb_bdev).bd_disk).queue.as_ref() }
                .map_or(512, |q| q.limits.logical_block_size);
        }
        512
    }

    /// Block size of the file system holding the file (discard granularity).
    pub(crate) fn fs_block_size(&self) -> u32 {
        // SAFETY: The inode and its super block are valid while the file is
        // open; `s_blocksize` is fixed once the file system is mounted.
        let size = unsafe { (*(*self.inode()).i_sb).s_blocksize };
        u32::try_from(size).unwrap_or(512)
    }

    /// The file's page-cache allocation mask, to give back to
    /// [`Self::restore_gfp_mask`] after [`Self::restrict_gfp_mask`].
    pub(crate) fn gfp_mask(&self) -> u32 {
        // SAFETY: `f_mapping` is valid while the file is open; the mask is a
        // plain word (loop.c reads and writes it without a lock).
        unsafe { (*(*self.raw()).f_mapping).gfp_mask }
    }

    /// Clears `__GFP_IO | __GFP_FS` in the file's page-cache allocation mask so
    /// that reclaim from our own I/O never recurses into the file system.
    pub(crate) fn restrict_gfp_mask(&self) {
        let io_fs = (1 << bindings::___GFP_IO_BIT) | (1 << bindings::___GFP_FS_BIT);
        self.restore_gfp_mask(self.gfp_mask() & !io_fs);
    }

    pub(crate) fn restore_gfp_mask(&self, mask: u32) {
        // SAFETY: As in `gfp_mask`.
        unsafe { (*(*self.raw()).f_mapping).gfp_mask = mask };
    }

    /// Whether both files share one page cache (the same file, opened twice).
    pub(crate) fn same_mapping(&self, other: &BackingFile) -> bool {
        // SAFETY: Both files are open, so their `f_mapping` are valid.
        unsafe { ptr::eq((*self.raw()).f_mapping, (*other.raw()).f_mapping) }
    }

    /// Writes the file's path into `out` (sysfs `backing_file`).
    pub(crate) fn write_path(&self, out: &mut [u8]) -> Result<usize> {
        let len = c_int::try_from(out.len()).map_err(|_| EINVAL)?;
        // SAFETY: `out` is a writable buffer of `len` bytes; `file_path` writes
        // the path at its end and returns a pointer into it (or an ERR_PTR).
        let path = from_err_ptr(unsafe {
            bindings::file_path(self.raw(), out.as_mut_ptr().cast::<c_char>(), len)
        })?;
        // SAFETY: `path` points into `out` at a NUL-terminated string.
        let start = unsafe { path.cast::<u8>().offset_from(out.as_ptr()) };
        let start = usize::try_from(start).map_err(|_| EINVAL)?;
        let len = out[start..].iter().position(|&b| b == 0).unwrap_or(0);
        out.copy_within(start..start + len, 0);
        Ok(len)
    }

    /// `vfs_fsync` of the whole file (or only its data with `datasync`).
    pub(crate) fn fsync(&self, datasync: bool) -> Result {
        // SAFETY: The file is valid while we hold the reference.
        to_result(unsafe { bindings::vfs_fsync(self.raw(), c_int::from(datasync)) })
    }

    /// `vfs_fsync_range` of `[start, end]`, data only (FUA writes).
    pub(crate) fn fsync_range(&self, start: u64, end: u64) -> Result {
        let start = i64::try_from(start).map_err(|_| EINVAL)?;
        let end = i64::try_from(end).map_err(|_| EINVAL)?;
        // SAFETY: The file is valid while we hold the reference.
        to_result(unsafe { bindings::vfs_fsync_range(self.raw(), start, end, 1) })
    }

    pub(crate) fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let len = i64::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: The file is valid while we hold the reference; `vfs_fallocate`
        // does its own permission and freeze checks.
        to_result(unsafe { bindings::vfs_fallocate(self.raw(), mode, pos, len) })
    }

    /// Reads or writes a request's data at `pos` through one kiocb, in
    /// direct-I/O mode if `direct`. Returns the number of bytes transferred;
    /// a short read leaves `data` positioned after the bytes read.
    fn rw_iter(
        &self,
        data: &mut RequestData<'_>,
        pos: u64,
        write: bool,
        direct: bool,
    ) -> Result<usize> {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let file = self.raw();
        // An all-zero kiocb is the state `init_sync_kiocb` starts from; the
        // fields set below are those it sets (`ki_complete == NULL` makes the
        // call synchronous).
        let mut kiocb: bindings::kiocb = pin_init::zeroed();
        kiocb.ki_filp = file;
        // Nothing from the file's own flags (loop.c's kiocbs carry none
        // either): O_APPEND, which the fd's holder can set at any time,
        // would send every write to the end of the file.
        kiocb.ki_flags = if direct {
            bindings::IOCB_DIRECT as c_int
        } else {
            0
        };
        kiocb.ki_pos = pos;
        kiocb.ki_ioprio = data.ioprio;
        let ret = if write {
            // SAFETY: `vfs_iocb_iter_write` needs a valid file, kiocb and
            // iterator: `file` is valid while we hold the reference, `kiocb`
            // and the bvec iterator are valid for the call, and the bio pages
            // are pinned by the in-flight request.
            unsafe { bindings::vfs_iocb_iter_write(file, &mut kiocb, &mut data.iter) }
        } else {
            // SAFETY: As for the write, for `vfs_iocb_iter_read`.
            unsafe { bindings::vfs_iocb_iter_read(file, &mut kiocb, &mut data.iter) }
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret as usize)
    }

    pub(crate) fn read_into(
        &self,
        data: &mut RequestData<'_>,
        pos: u64,
        direct: bool,
    ) -> Result<usize> {
        self.rw_iter(data, pos, false, direct)
    }

    pub(crate) fn write_from(
        &self,
        data: &mut RequestData<'_>,
        pos: u64,
        direct: bool,
    ) -> Result<usize> {
        self.rw_iter(data, pos, true, direct)
    }
}
