// SPDX-License-Identifier: GPL-2.0

//! The FFI layer: every `unsafe` operation of rust_loop lives in this file.
//!
//! The 7.2 `kernel` crate's block abstraction cannot express a loop driver (no
//! fops, no request accessors, no gendisk access; see rfl-api.md §2), so this
//! layer wraps the raw C interfaces the driver needs into small safe types:
//!
//! - [`Disk`]: a gendisk with its own blk-mq tag set, block fops and sysfs group;
//!   [`Frozen`] and [`LimitsUpdate`] for queue freezes and limit changes.
//! - [`Request`]: the accessors and the bvec iteration of a blk-mq request.
//! - [`BackingFile`]: read, write, fsync, fallocate and attributes of a file.
//! - [`BlockDevice`]: the claiming and flushing of the `block_device` an ioctl
//!   arrived on.
//! - [`BlockMajor`] and [`ControlDevice`]: the block major with its probe hook,
//!   and the `/dev/rloop-control` misc device.
//!
//! The C callbacks forward to the safe driver logic through the [`DiskOps`] and
//! [`ControlOps`] traits, implemented in `device.rs` and `control.rs`.

use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::MaybeUninit,
    ptr::{self, NonNull},
    sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering},
};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    fs::{File, LocalFile},
    new_mutex,
    prelude::*,
    str::Formatter,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex},
    task::Task,
    types::{ForeignOwnable, Opaque},
};

// ---------------------------------------------------------------------------
// Constants bindgen cannot emit (cast macros and headers outside the bindings).
// ---------------------------------------------------------------------------

/// `BLK_STS_*` (blk_types.h).
pub(crate) type BlkStatus = bindings::blk_status_t;
pub(crate) const BLK_STS_OK: BlkStatus = 0;
pub(crate) const BLK_STS_NOTSUPP: BlkStatus = 1;
pub(crate) const BLK_STS_IOERR: BlkStatus = 10;

/// `REQ_OP_MASK` and request flags (blk_types.h).
const REQ_OP_MASK: u32 = (1 << 8) - 1;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;
const REQ_NOUNMAP: u32 = 1 << bindings::req_flag_bits___REQ_NOUNMAP;
/// `RQF_QUIET` (blk-mq.h): no "I/O error" log line for this request.
const RQF_QUIET: u32 = 1 << bindings::rqf_flags___RQF_QUIET;

/// `BLK_FEAT_*` (blkdev.h).
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
const BLK_FEAT_FUA: u32 = 1 << 1;
const BLK_FEAT_ROTATIONAL: u32 = 1 << 2;

/// `BLK_OPEN_*` (blkdev.h).
const BLK_OPEN_WRITE: u32 = 1 << 1;
const BLK_OPEN_EXCL: u32 = 1 << 2;

/// `FMODE_*` (fs.h).
const FMODE_WRITE: u32 = 1 << 1;
const FMODE_CAN_ODIRECT: u32 = 1 << 22;

/// `FALLOC_FL_*` (uapi/linux/falloc.h).
pub(crate) const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub(crate) const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub(crate) const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// `S_IFMT`, `S_IFREG`, `S_IFBLK` (uapi/linux/stat.h).
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;
const S_IFBLK: u16 = 0o060000;

/// `MINORBITS` (kdev_t.h).
pub(crate) const MINORBITS: u32 = 20;

const SECTOR_SHIFT: u32 = 9;
pub(crate) const SECTOR_SIZE: u64 = 1 << SECTOR_SHIFT;

/// `EOPNOTSUPP`, which `kernel::error::code` lacks.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// The block status for a backing-file error (`errno_to_blk_status`).
pub(crate) fn error_status(error: Error) -> BlkStatus {
    // SAFETY: a pure mapping from an errno value to a status.
    unsafe { bindings::errno_to_blk_status(error.to_errno()) }
}

/// `ENOSYS`, which `kernel::error::code` lacks.
pub(crate) fn enosys() -> Error {
    Error::from_errno(-(bindings::ENOSYS as i32))
}

// ---------------------------------------------------------------------------
// Small helpers around single C calls.
// ---------------------------------------------------------------------------

/// Whether the current task has `CAP_SYS_ADMIN`.
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only inspects the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// Sleeps for at least `ms` milliseconds.
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `msleep` may be called from any sleepable context; all callers
    // are ioctl or work-item paths.
    unsafe { bindings::msleep(ms) }
}

/// Raw 32-bit random number, for probabilistic fault injection.
pub(crate) fn random_u32() -> u32 {
    // SAFETY: `get_random_u32` has no preconditions.
    unsafe { bindings::get_random_u32() }
}

/// The Linux `dev_t` encoding of user space's 64-bit `huge_encode_dev`.
fn huge_encode_dev(dev: u32) -> u64 {
    let major = u64::from(dev >> MINORBITS);
    let minor = u64::from(dev & ((1 << MINORBITS) - 1));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Sets task flags on the current task while alive, then clears those that
/// were not set before.
pub(crate) struct TaskFlagsScope {
    added: u32,
}

impl TaskFlagsScope {
    /// Memory reclaim never recurses into block I/O (`memalloc_noio_save`).
    pub(crate) fn no_io() -> Self {
        Self::enter(bindings::PF_MEMALLOC_NOIO)
    }

    /// Serving a request from the backing file, as loop.c's workers do: no
    /// reclaim into block I/O, and dirty throttling on the backing device's
    /// own state only, never on the dirty pages of the device being served.
    pub(crate) fn backing_io() -> Self {
        Self::enter(bindings::PF_MEMALLOC_NOIO | bindings::PF_LOCAL_THROTTLE)
    }

    fn enter(wanted: u32) -> Self {
        let task = Task::current_raw();
        // SAFETY: `task` is the current task, alive for this call; only the
        // current task writes its own `flags`.
        let flags = unsafe { &mut (*task).flags };
        let added = wanted & !*flags;
        *flags |= added;
        Self { added }
    }
}

impl Drop for TaskFlagsScope {
    fn drop(&mut self) {
        let task = Task::current_raw();
        // SAFETY: as in `enter`: the scope never leaves the task that made it.
        unsafe { (*task).flags &= !self.added };
    }
}

// ---------------------------------------------------------------------------
// Workqueue.
// ---------------------------------------------------------------------------

/// The workqueue that runs the requests of every rloop device, one work item
/// per request (the kernel crate only offers the system queues).
///
/// # Invariants
///
/// `raw` is a valid workqueue, published in `IO_WORKQUEUE` while `self` lives.
pub(crate) struct IoWorkQueue {
    raw: NonNull<bindings::workqueue_struct>,
}

/// The live `IoWorkQueue`, for `queue_rq` (which has no other way to reach it).
static IO_WORKQUEUE: AtomicPtr<bindings::workqueue_struct> = AtomicPtr::new(ptr::null_mut());

// SAFETY: workqueues are designed to be used from any thread.
unsafe impl Send for IoWorkQueue {}
// SAFETY: see above.
unsafe impl Sync for IoWorkQueue {}

impl IoWorkQueue {
    /// An unbound, freezable workqueue with a rescuer thread (I/O on the
    /// backing file must make progress under memory pressure). There is one
    /// per module: creating it publishes it to the request path.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        let flags = bindings::wq_flags_WQ_UNBOUND
            | bindings::wq_flags_WQ_FREEZABLE
            | bindings::wq_flags_WQ_MEM_RECLAIM;
        // SAFETY: the format string is a valid C string consuming one `%s`
        // argument, `name` is a valid C string.
        let raw = unsafe {
            bindings::alloc_workqueue_noprof(c"%s".as_char_ptr(), flags, 0, name.as_char_ptr())
        };
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        IO_WORKQUEUE.store(raw.as_ptr(), Ordering::Release);
        // INVARIANT: `alloc_workqueue_noprof` returned a valid workqueue,
        // published above.
        Ok(Self { raw })
    }
}

impl Drop for IoWorkQueue {
    fn drop(&mut self) {
        IO_WORKQUEUE.store(ptr::null_mut(), Ordering::Release);
        // SAFETY: valid by the type invariant; every disk was deleted before
        // (see `LoopModule`), so no request can queue work any more, and
        // `destroy_workqueue` drains what is queued.
        unsafe { bindings::destroy_workqueue(self.raw.as_ptr()) };
    }
}

/// Queues a request's work item on `wq`, a disk's ordered workqueue, or
/// without one on the module's I/O workqueue.
///
/// # Safety
///
/// `work` is an initialised, not pending work item that stays valid until it
/// has run; `wq`, if given, is a workqueue that outlives it.
unsafe fn queue_io_work(
    work: *mut bindings::work_struct,
    wq: Option<NonNull<bindings::workqueue_struct>>,
) {
    let wq = wq.map_or_else(|| IO_WORKQUEUE.load(Ordering::Acquire), NonNull::as_ptr);
    // SAFETY: disks exist only while the module's `IoWorkQueue` lives (it
    // is created first and dropped last), so the module's queue is valid;
    // `work` and a given `wq` per the function contract.
    unsafe {
        bindings::queue_work_on(bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int, wq, work)
    };
}

// ---------------------------------------------------------------------------
// Backing files.
// ---------------------------------------------------------------------------

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
        // SAFETY: the file is only used for I/O at explicit positions, never
        // through `f_pos`, so no `fdget_pos` is needed.
        let file = unsafe { LocalFile::assume_no_fdget_pos(local) };
        Ok(Self { file })
    }

    fn raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: `raw()` is a valid file for as long as we hold the reference,
        // and `f_mapping->host` is set for every opened file and never changes.
        unsafe { (*(*self.raw()).f_mapping).host }
    }

    fn mode_bits(&self) -> u16 {
        // SAFETY: see `inode`; `i_mode` is immutable for the file type bits.
        unsafe { (*self.inode()).i_mode }
    }

    pub(crate) fn is_regular(&self) -> bool {
        self.mode_bits() & S_IFMT == S_IFREG
    }

    pub(crate) fn is_block_device(&self) -> bool {
        self.mode_bits() & S_IFMT == S_IFBLK
    }

    fn f_mode(&self) -> u32 {
        // SAFETY: `f_mode` is set at open and read-only afterwards.
        unsafe { (*self.raw()).f_mode }
    }

    /// Opened for writing.
    pub(crate) fn is_writable(&self) -> bool {
        self.f_mode() & FMODE_WRITE != 0
    }

    /// The file was opened with `O_DIRECT`.
    pub(crate) fn opened_direct(&self) -> bool {
        self.file.flags() & kernel::fs::file::flags::O_DIRECT != 0
    }

    pub(crate) fn can_direct_io(&self) -> bool {
        self.f_mode() & FMODE_CAN_ODIRECT != 0
    }

    fn fops(&self) -> &bindings::file_operations {
        // SAFETY: every opened file has valid, static `f_op`.
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
        // SAFETY: for a block device file the inode is a bdev inode (`I_BDEV`
        // is valid), and the open file keeps the block device and its disk alive.
        unsafe {
            let bdev = bindings::I_BDEV(self.inode());
            let disk = (*bdev).bd_disk;
            // A disk whose operations belong to this module is one of ours,
            // and the module has one `DiskOps` type (`LoopDevice`). The
            // operations' address cannot tell: a `const` has no fixed one.
            if !ptr::eq((*(*disk).fops).owner, &raw const bindings::__this_module) {
                return None;
            }
            // `private_data` holds an `Arc<T>` until `free_disk` (see `Disk::add`),
            // which cannot run while this file keeps the disk open.
            Some(<Arc<T> as ForeignOwnable>::borrow((*disk).private_data))
        }
    }

    /// Size in bytes (`i_size` for block devices, `STATX_SIZE` for files).
    pub(crate) fn size(&self) -> Result<u64> {
        if self.is_block_device() {
            // SAFETY: the inode is valid (see `inode`); `i_size` of a bdev inode
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
        // SAFETY: `f_path` of an open file is valid; `stat` is writable memory
        // of the right type.
        to_result(unsafe {
            bindings::vfs_getattr_nosec(
                &raw const (*self.raw()).__bindgen_anon_1.f_path,
                stat.as_mut_ptr(),
                mask,
                0,
            )
        })?;
        // SAFETY: zero is a valid `kstat`, and `vfs_getattr_nosec` filled it.
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
        // SAFETY: the inode and its super block are valid while the file is open.
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
        // SAFETY: the inode and its super block are valid while the file is
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
        // SAFETY: as in `gfp_mask`.
        unsafe { (*(*self.raw()).f_mapping).gfp_mask = mask };
    }

    /// Whether both files share one page cache (the same file, opened twice).
    pub(crate) fn same_mapping(&self, other: &BackingFile) -> bool {
        // SAFETY: both files are open, so their `f_mapping` are valid.
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
        // SAFETY: the file is valid while we hold the reference.
        to_result(unsafe { bindings::vfs_fsync(self.raw(), c_int::from(datasync)) })
    }

    /// `vfs_fsync_range` of `[start, end]`, data only (FUA writes).
    pub(crate) fn fsync_range(&self, start: u64, end: u64) -> Result {
        let start = i64::try_from(start).map_err(|_| EINVAL)?;
        let end = i64::try_from(end).map_err(|_| EINVAL)?;
        // SAFETY: the file is valid while we hold the reference.
        to_result(unsafe { bindings::vfs_fsync_range(self.raw(), start, end, 1) })
    }

    pub(crate) fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let len = i64::try_from(len).map_err(|_| EINVAL)?;
        // SAFETY: the file is valid while we hold the reference; `vfs_fallocate`
        // does its own permission and freeze checks.
        to_result(unsafe { bindings::vfs_fallocate(self.raw(), mode, pos, len) })
    }

    /// Reads or writes one bio's worth of data at `pos` through a kiocb, in
    /// direct-I/O mode if `direct`. Returns the number of bytes transferred;
    /// a short read leaves `segment` positioned after the bytes read.
    fn rw_iter(
        &self,
        segment: &mut BioSegment<'_>,
        pos: u64,
        write: bool,
        direct: bool,
    ) -> Result<usize> {
        let pos = i64::try_from(pos).map_err(|_| EINVAL)?;
        let file = self.raw();
        // SAFETY: an all-zero kiocb is the state `init_sync_kiocb` starts from;
        // the fields set below are those it sets (`ki_complete == NULL` makes
        // the call synchronous).
        let mut kiocb: bindings::kiocb = unsafe { core::mem::zeroed() };
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
        // SAFETY: `file` is valid; `kiocb` and the bvec iterator are valid for
        // the call, and the bio pages are pinned by the in-flight request.
        let ret = unsafe {
            if write {
                bindings::vfs_iocb_iter_write(file, &mut kiocb, &mut segment.iter)
            } else {
                bindings::vfs_iocb_iter_read(file, &mut kiocb, &mut segment.iter)
            }
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        Ok(ret as usize)
    }

    pub(crate) fn read_into(
        &self,
        segment: &mut BioSegment<'_>,
        pos: u64,
        direct: bool,
    ) -> Result<usize> {
        self.rw_iter(segment, pos, false, direct)
    }

    pub(crate) fn write_from(
        &self,
        segment: &mut BioSegment<'_>,
        pos: u64,
        direct: bool,
    ) -> Result<usize> {
        self.rw_iter(segment, pos, true, direct)
    }
}

// ---------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------

/// The operation of a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqOp {
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
    Other,
}

/// A blk-mq request that has been started and not yet ended.
///
/// # Invariants
///
/// `raw` is a started request owned by the driver until [`Request::end`]
/// consumes this handle.
pub(crate) struct Request {
    raw: NonNull<bindings::request>,
}

// SAFETY: a started request may be completed from any thread.
unsafe impl Send for Request {}

impl Request {
    pub(crate) fn op(&self) -> ReqOp {
        // SAFETY: `raw` is valid by the type invariant.
        let flags = unsafe { (*self.raw.as_ptr()).cmd_flags };
        match flags & REQ_OP_MASK {
            bindings::req_op_REQ_OP_READ => ReqOp::Read,
            bindings::req_op_REQ_OP_WRITE => ReqOp::Write,
            bindings::req_op_REQ_OP_FLUSH => ReqOp::Flush,
            bindings::req_op_REQ_OP_DISCARD => ReqOp::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => ReqOp::WriteZeroes,
            _ => ReqOp::Other,
        }
    }

    fn cmd_flags(&self) -> u32 {
        // SAFETY: `raw` is valid by the type invariant.
        unsafe { (*self.raw.as_ptr()).cmd_flags }
    }

    pub(crate) fn is_fua(&self) -> bool {
        self.cmd_flags() & REQ_FUA != 0
    }

    pub(crate) fn no_unmap(&self) -> bool {
        self.cmd_flags() & REQ_NOUNMAP != 0
    }

    /// Byte position on the device (`blk_rq_pos << 9`).
    pub(crate) fn position(&self) -> u64 {
        // SAFETY: `raw` is valid by the type invariant.
        unsafe { (*self.raw.as_ptr()).__sector << SECTOR_SHIFT }
    }

    /// Total length in bytes (`blk_rq_bytes`).
    pub(crate) fn bytes(&self) -> u64 {
        // SAFETY: `raw` is valid by the type invariant.
        u64::from(unsafe { (*self.raw.as_ptr()).__data_len })
    }

    /// Does not log an I/O error line when it fails (fault injection,
    /// requests to an unbound device).
    pub(crate) fn set_quiet(&self) {
        // SAFETY: the driver owns the started request (type invariant).
        unsafe { (*self.raw.as_ptr()).rq_flags |= RQF_QUIET };
    }

    /// Completes the first `bytes` of the request successfully (none if that
    /// would be all of it); the rest stays in flight, to be ended (with an
    /// error) by the caller.
    pub(crate) fn end_leading_bytes(&self, bytes: u64) {
        if bytes == 0 || bytes >= self.bytes() {
            return;
        }
        // SAFETY: the driver owns the started request (type invariant) and
        // `bytes` is less than what is left of it, so the request is not
        // finished and stays valid for the caller's final `blk_mq_end_request`.
        unsafe { bindings::blk_update_request(self.raw.as_ptr(), BLK_STS_OK, bytes as c_uint) };
    }

    /// Calls `f` on each bio of the request with an iterator over its data and
    /// the bio's byte offset from the start of the request. Stops at the
    /// first error.
    pub(crate) fn for_each_bio(
        &self,
        write: bool,
        mut f: impl FnMut(&mut BioSegment<'_>, u64) -> Result,
    ) -> Result {
        // SAFETY: `raw` is valid; its bio chain is stable while the request is
        // in flight.
        let mut bio = unsafe { (*self.raw.as_ptr()).bio };
        let mut offset = 0u64;
        while !bio.is_null() {
            // SAFETY: `bio` is a bio of this in-flight request. `bi_iter` is a
            // packed structure: it is copied out, never referenced.
            let (iter, vecs, next) = unsafe { ((*bio).bi_iter, (*bio).bi_io_vec, (*bio).bi_next) };
            let size = iter.bi_size;
            if size > 0 {
                let mut segment = BioSegment::new(vecs, iter, write);
                f(&mut segment, offset)?;
            }
            offset += u64::from(size);
            bio = next;
        }
        Ok(())
    }
}

/// The data of one bio as an `iov_iter` over its bvecs.
pub(crate) struct BioSegment<'a> {
    iter: bindings::iov_iter,
    len: usize,
    _request: PhantomData<&'a Request>,
}

impl BioSegment<'_> {
    fn new(vecs: *mut bindings::bio_vec, it: bindings::bvec_iter, write: bool) -> Self {
        let (idx, done, size) = (it.bi_idx, it.bi_bvec_done, it.bi_size);
        // Count the bvecs this bio's remaining `size` bytes span, starting at
        // `bi_idx` with `bi_bvec_done` bytes of it already consumed (`bi_vcnt`
        // is meaningless for cloned bios).
        let mut nr = 0usize;
        let mut covered = 0u64;
        while covered < u64::from(size) {
            // SAFETY: the bvec table of an in-flight bio covers `bi_size` bytes
            // from `bi_idx`, so every index read here is inside it.
            let len = unsafe { (*vecs.add(idx as usize + nr)).bv_len };
            covered += u64::from(len) - if nr == 0 { u64::from(done) } else { 0 };
            nr += 1;
        }
        let direction = if write {
            bindings::ITER_SOURCE
        } else {
            bindings::ITER_DEST
        };
        let mut iter = MaybeUninit::<bindings::iov_iter>::zeroed();
        // SAFETY: `iter` is writable; the bvec slice `[idx, idx + nr)` is valid
        // and outlives the iterator (the request holds the bio).
        unsafe {
            bindings::iov_iter_bvec(
                iter.as_mut_ptr(),
                direction as c_uint,
                vecs.add(idx as usize),
                nr as c_ulong,
                size as usize,
            );
        }
        // SAFETY: `iov_iter_bvec` initialised the iterator.
        let mut iter = unsafe { iter.assume_init() };
        iter.iov_offset = done as usize;
        Self {
            iter,
            len: size as usize,
            _request: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Zero-fills the segment after its first `done` bytes (the tail of a
    /// short read, which advanced the iterator by `done`).
    pub(crate) fn zero_after(&mut self, done: usize) {
        let left = self.len.saturating_sub(done);
        // SAFETY: the iterator describes pinned, writable request pages.
        unsafe { bindings::iov_iter_zero(left, &mut self.iter) };
    }
}

// ---------------------------------------------------------------------------
// Disks: gendisk + tag set + fops + sysfs group.
// ---------------------------------------------------------------------------

/// The open mode of a block device (`blk_mode_t`).
#[derive(Clone, Copy)]
pub(crate) struct OpenMode(u32);

impl OpenMode {
    pub(crate) fn can_write(self) -> bool {
        self.0 & BLK_OPEN_WRITE != 0
    }
    pub(crate) fn exclusive(self) -> bool {
        self.0 & BLK_OPEN_EXCL != 0
    }
}

/// The sysfs attributes of the `loop/` group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopAttr {
    BackingFile,
    Offset,
    Sizelimit,
    Autoclear,
    Partscan,
    Dio,
    FaultInject,
}

/// The driver logic behind a disk: implemented by the loop device.
pub(crate) trait DiskOps: Send + Sync + Sized + 'static {
    /// State the request path reads lock-free; written only with the queue frozen.
    type IoState: Send + Sync;

    fn disk(&self) -> &Disk<Self>;
    fn open(&self) -> Result;
    /// Called under the block core's `open_mutex`, witnessed by the token.
    fn release(&self, disk_openers: u32, open_mutex: OpenMutexToken);
    fn ioctl(
        &self,
        bdev: &BlockDevice,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
        compat: bool,
    ) -> Result<i32>;
    /// Decides, in the submitter's context, what happens to a new request.
    fn queue_rq(&self, io: &Self::IoState, rq: &Request) -> Dispatch;
    fn handle_request(&self, io: &Self::IoState, rq: &Request) -> BlkStatus;
    fn show(&self, attr: LoopAttr, out: &mut Formatter<'_>) -> Result;
    fn store(&self, attr: LoopAttr, input: &[u8]) -> Result;
}

/// What `queue_rq` does with a request.
pub(crate) enum Dispatch {
    /// Fail it at once, quietly (the device is not bound).
    Fail,
    /// Run it on the I/O workqueue, in parallel with the others.
    Defer,
    /// Run it on the device's own ordered workqueue, one at a time (see
    /// [`Disk::enable_ordered_work`]).
    DeferInOrder,
}

/// Per-request driver data: the work item that runs the request.
#[repr(C)]
struct RequestPdu {
    work: bindings::work_struct,
}

/// A gendisk with its tag set, owned by the device `T` it serves.
///
/// # Invariants
///
/// - `gendisk` is a valid disk allocated on `tag_set`; it is added to the
///   system by `add` and deleted exactly once by `delete` (or released by
///   `Drop` if it was never added).
/// - `io_state` is read only by a request that entered it (see
///   [`Disk::enter_io_state`]: it counted itself in `io_state_readers`, then saw
///   `serving` set), until it leaves.
/// - `io_state` is written only with `freeze_lock` held and while no request
///   can be reading it: either the queue is frozen (a [`Frozen`] guard; frozen
///   means no request in flight), or `serving` is clear and no reader that saw
///   it set is left ([`Disk::start_serving`], [`Disk::stop_serving`]).
#[pin_data(PinnedDrop)]
pub(crate) struct Disk<T: DiskOps> {
    gendisk: NonNull<bindings::gendisk>,
    tag_set: KBox<Opaque<bindings::blk_mq_tag_set>>,
    #[pin]
    freeze_lock: Mutex<()>,
    io_state: UnsafeCell<T::IoState>,
    /// Whether requests may read `io_state` (the device is bound). Binding
    /// and unbinding flip it without a queue freeze, whose RCU grace period
    /// would dominate an attach/detach cycle.
    serving: AtomicBool,
    /// Requests between `enter_io_state` and `leave_io_state`.
    io_state_readers: AtomicUsize,
    /// The disk's ordered workqueue, once created (never replaced; destroyed
    /// when the disk is deleted or dropped).
    ordered_wq: AtomicPtr<bindings::workqueue_struct>,
    added: AtomicBool,
    deleted: AtomicBool,
}

// SAFETY: the C disk and tag set are thread-safe objects; `io_state` is only
// accessed under the protocol of the type invariant.
unsafe impl<T: DiskOps> Send for Disk<T> {}
// SAFETY: see above.
unsafe impl<T: DiskOps> Sync for Disk<T> {}

/// Numbering of a new disk.
pub(crate) struct DiskNumbers {
    pub(crate) major: u32,
    pub(crate) first_minor: u32,
    pub(crate) minors: u32,
    pub(crate) index: u32,
    pub(crate) suppress_partscan: bool,
}

impl<T: DiskOps> Disk<T> {
    /// Allocates the tag set and the gendisk (not yet visible: see [`Self::add`]).
    pub(crate) fn new(
        numbers: DiskNumbers,
        io_state: T::IoState,
        queue_depth: u32,
    ) -> Result<impl PinInit<Self, Error>> {
        let (gendisk, tag_set) = {
            let tag_set = KBox::new(Opaque::<bindings::blk_mq_tag_set>::zeroed(), GFP_KERNEL)?;
            let set = tag_set.get();
            // SAFETY: `set` points to zeroed, boxed (address-stable) memory that we
            // own; the fields set are those `blk_mq_alloc_tag_set` reads.
            unsafe {
                (*set).ops = &DiskVTable::<T>::MQ_OPS.0;
                (*set).nr_hw_queues = 1;
                (*set).nr_maps = 1;
                (*set).queue_depth = queue_depth;
                (*set).numa_node = bindings::NUMA_NO_NODE;
                (*set).cmd_size = core::mem::size_of::<RequestPdu>() as c_uint;
                // Not BLOCKING: `queue_rq` only hands requests to workers.
                (*set).flags = bindings::BLK_MQ_F_STACKING | bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
                to_result(bindings::blk_mq_alloc_tag_set(set))?;
            }
            // Queue limits of a fresh, unbound device: loop.c's 2560-sector
            // maximum request, 512-byte blocks.
            // SAFETY: zero is a valid `queue_limits` meaning "defaults".
            let mut lim: bindings::queue_limits = unsafe { core::mem::zeroed() };
            lim.max_hw_sectors = 2560;
            // SAFETY: `set` is an allocated tag set; `lim` is valid for the
            // call; the lock class key is static.
            let disk = from_err_ptr(unsafe {
                bindings::__blk_mq_alloc_disk(
                    set,
                    &mut lim,
                    ptr::null_mut(),
                    kernel::static_lock_class!().as_ptr(),
                )
            });
            let disk = match disk {
                Ok(disk) => disk,
                Err(e) => {
                    // SAFETY: allocated above and not used by any disk.
                    unsafe { bindings::blk_mq_free_tag_set(set) };
                    return Err(e);
                }
            };
            // SAFETY: `disk` was just allocated and is not yet visible to anyone.
            unsafe {
                (*disk).major = numbers.major as c_int;
                (*disk).first_minor = numbers.first_minor as c_int;
                (*disk).minors = numbers.minors as c_int;
                (*disk).fops = &DiskVTable::<T>::FOPS.0;
                (*disk).events = bindings::DISK_EVENT_MEDIA_CHANGE as u16;
                (*disk).event_flags = bindings::DISK_EVENT_FLAG_UEVENT as u16;
                if numbers.suppress_partscan {
                    bindings::set_bit(
                        bindings::GD_SUPPRESS_PART_SCAN as c_ulong,
                        &raw mut (*disk).state,
                    );
                }
                let name = &mut (*disk).disk_name;
                let bytes =
                    core::slice::from_raw_parts_mut(name.as_mut_ptr().cast::<u8>(), name.len());
                let mut f = Formatter::new(bytes);
                core::fmt::write(&mut f, format_args!("rloop{}", numbers.index))
                    .map_err(|_| EINVAL)?;
                let len = f.bytes_written();
                if len >= bytes.len() {
                    return Err(EINVAL);
                }
                bytes[len] = 0;
            }
            // SAFETY: `from_err_ptr` returned a non-error, non-null pointer.
            (unsafe { NonNull::new_unchecked(disk) }, tag_set)
        };
        Ok(try_pin_init!(Self {
            gendisk,
            tag_set,
            freeze_lock <- new_mutex!(()),
            io_state: UnsafeCell::new(io_state),
            serving: AtomicBool::new(false),
            io_state_readers: AtomicUsize::new(0),
            ordered_wq: AtomicPtr::new(ptr::null_mut()),
            added: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        }))
    }

    fn raw(&self) -> *mut bindings::gendisk {
        self.gendisk.as_ptr()
    }

    fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: `gendisk` is valid (type invariant) and its queue is set at
        // allocation and lives as long as the disk.
        unsafe { (*self.raw()).queue }
    }

    /// Makes the disk visible (`/dev/rloopN`, sysfs) with `owner` as the
    /// device its callbacks reach. The disk keeps `owner` alive until the last
    /// reference to the gendisk is gone (`free_disk`).
    pub(crate) fn add(&self, owner: Arc<T>) -> Result {
        let owner_ptr = owner.into_foreign();
        // SAFETY: the disk is not yet added, so nobody reads `private_data` or
        // `queuedata` concurrently. `queuedata` is a borrowed copy of the
        // pointer: the queue never outlives the disk's `private_data`.
        unsafe {
            (*self.raw()).private_data = owner_ptr;
            (*self.queue()).queuedata = owner_ptr;
        }
        // SAFETY: the gendisk is fully set up; no parent, no extra groups.
        let ret =
            unsafe { bindings::device_add_disk(ptr::null_mut(), self.raw(), ptr::null_mut()) };
        if ret != 0 {
            // SAFETY: `add` failed, so `free_disk` will never release the owner.
            unsafe {
                (*self.raw()).private_data = ptr::null_mut();
                drop(<Arc<T> as ForeignOwnable>::from_foreign(owner_ptr));
            }
            return to_result(ret);
        }
        self.added.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes the disk from the system (`del_gendisk`); in-flight I/O is
    /// drained. The owner is released by `free_disk` once the last user of the
    /// gendisk is gone. Idempotent.
    pub(crate) fn delete(&self) {
        if !self.added.load(Ordering::Acquire) || self.deleted.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the disk was added and is deleted only once (checked above).
        // loop.c's order: delete, free the tag set, drop our reference.
        unsafe {
            bindings::del_gendisk(self.raw());
            bindings::blk_mq_free_tag_set(self.tag_set.get());
            bindings::put_disk(self.raw());
        }
        self.destroy_ordered_wq();
    }

    /// Creates the disk's ordered workqueue, unless it exists: a worker
    /// thread that runs the requests deferred with [`Dispatch::DeferInOrder`]
    /// one at a time, like loop.c's per-device worker. Created on the first
    /// bind with loop.c's flags (no rescuer thread, whose creation would
    /// dominate a first bind), so that adding a device stays cheap.
    pub(crate) fn enable_ordered_work(&self, number: u32) -> Result {
        if !self.ordered_wq.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let flags = bindings::wq_flags_WQ_UNBOUND
            | bindings::wq_flags_WQ_FREEZABLE
            | bindings::wq_flags___WQ_ORDERED;
        // SAFETY: the format string is a valid C string consuming one `%u`.
        let raw =
            unsafe { bindings::alloc_workqueue_noprof(c"rloop%u".as_char_ptr(), flags, 1, number) };
        if raw.is_null() {
            return Err(ENOMEM);
        }
        if self
            .ordered_wq
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: created above and never published.
            unsafe { bindings::destroy_workqueue(raw) };
        }
        Ok(())
    }

    /// Destroys the ordered workqueue once no request can reach it any more.
    fn destroy_ordered_wq(&self) {
        let raw = self.ordered_wq.swap(ptr::null_mut(), Ordering::AcqRel);
        if !raw.is_null() {
            // SAFETY: created by `enable_ordered_work`; the disk is deleted
            // (or was never added), so no request queues work on it any more,
            // and `destroy_workqueue` drains what is queued.
            unsafe { bindings::destroy_workqueue(raw) };
        }
    }

    /// Number of openers of the whole disk (partitions included).
    pub(crate) fn openers(&self) -> u32 {
        // SAFETY: `part0` is valid for the life of the disk; `bd_openers` is
        // an atomic counter.
        let openers = unsafe { bindings::atomic_read(&raw mut (*(*self.raw()).part0).bd_openers) };
        u32::try_from(openers).unwrap_or(0)
    }

    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: the disk is valid.
        unsafe { bindings::set_capacity(self.raw(), sectors) };
    }

    /// Sets the capacity and sends a change uevent (`loop_set_size`).
    pub(crate) fn set_capacity_and_notify(&self, sectors: u64) {
        // SAFETY: the disk is valid.
        if !unsafe { bindings::set_capacity_and_notify(self.raw(), sectors) } {
            self.uevent_change();
        }
    }

    pub(crate) fn set_read_only(&self, ro: bool) {
        // SAFETY: the disk is valid.
        unsafe { bindings::set_disk_ro(self.raw(), ro) };
    }

    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: the queue is valid; its limits are read racily as
        // `queue_logical_block_size` does.
        unsafe { ptr::read_volatile(&raw const (*self.queue()).limits.logical_block_size) }
    }

    fn kobj(&self) -> *mut bindings::kobject {
        // SAFETY: `part0` and its device are valid for the life of the disk.
        unsafe { &raw mut (*(*self.raw()).part0).bd_device.kobj }
    }

    pub(crate) fn uevent_change(&self) {
        // SAFETY: the kobject is valid and registered (the disk is added).
        unsafe { bindings::kobject_uevent(self.kobj(), bindings::kobject_action_KOBJ_CHANGE) };
    }

    pub(crate) fn suppress_uevents(&self, suppress: bool) {
        // SAFETY: the kobject is valid; the flag is a bitfield only written
        // by configuration paths, which are serialised by the device lock.
        unsafe { (*self.kobj()).set_uevent_suppress(u32::from(suppress)) };
    }

    /// Bumps the disk sequence number and drops the page cache of the device
    /// (`disk_force_media_change`), so a new binding never sees old data.
    pub(crate) fn force_media_change(&self) {
        // SAFETY: the disk is valid.
        unsafe { bindings::disk_force_media_change(self.raw()) };
    }

    pub(crate) fn set_partscan_suppressed(&self, suppressed: bool) {
        let state = self.raw();
        // SAFETY: `state` is a bitmap word of the valid disk, changed atomically.
        unsafe {
            if suppressed {
                bindings::set_bit(
                    bindings::GD_SUPPRESS_PART_SCAN as c_ulong,
                    &raw mut (*state).state,
                );
            } else {
                bindings::clear_bit(
                    bindings::GD_SUPPRESS_PART_SCAN as c_ulong,
                    &raw mut (*state).state,
                );
            }
        }
    }

    /// Drops and re-reads the partition table. `open_mutex` is taken here
    /// unless the caller runs inside `->release`, where the block core holds it.
    pub(crate) fn rescan_partitions(&self, open_mutex_held: OpenMutexHeld) -> Result {
        let disk = self.raw();
        // SAFETY: the disk is valid; `bdev_disk_changed` requires `open_mutex`,
        // which is held either by us (taken here) or by the caller (the block
        // core around `->release`, witnessed by `OpenMutexHeld::ByCaller`).
        unsafe {
            match open_mutex_held {
                OpenMutexHeld::No => {
                    bindings::mutex_lock(&raw mut (*disk).open_mutex);
                    let ret = bindings::bdev_disk_changed(disk, false);
                    bindings::mutex_unlock(&raw mut (*disk).open_mutex);
                    to_result(ret)
                }
                OpenMutexHeld::ByCaller(_) => to_result(bindings::bdev_disk_changed(disk, false)),
            }
        }
    }

    /// Runs `f` with the disk's `open_mutex` held, so no open or release of
    /// the disk runs meanwhile.
    pub(crate) fn with_open_mutex<R>(&self, f: impl FnOnce(OpenMutexHeld) -> R) -> R {
        let disk = self.raw();
        // SAFETY: `open_mutex` is a valid, initialised mutex of the disk.
        unsafe { bindings::mutex_lock(&raw mut (*disk).open_mutex) };
        let r = f(OpenMutexHeld::ByCaller(OpenMutexToken(())));
        // SAFETY: locked above by this thread.
        unsafe { bindings::mutex_unlock(&raw mut (*disk).open_mutex) };
        r
    }

    /// Drops the page cache and sets the capacity to zero (`invalidate_disk`).
    pub(crate) fn invalidate(&self) {
        // SAFETY: the disk is valid.
        unsafe { bindings::invalidate_disk(self.raw()) };
    }

    /// Adds or removes the `loop/` sysfs group.
    pub(crate) fn set_sysfs_group(&self, present: bool) -> Result {
        // SAFETY: the disk is added, so its device kobject is registered; the
        // group is a static of this module, removed before the module goes away
        // (unbind happens before delete).
        unsafe {
            if present {
                to_result(bindings::sysfs_create_group(
                    self.kobj(),
                    &LOOP_ATTR_GROUP.0,
                ))
            } else {
                bindings::sysfs_remove_group(self.kobj(), &LOOP_ATTR_GROUP.0);
                Ok(())
            }
        }
    }

    /// Freezes the queue: no request is in flight while the guard lives, so
    /// the I/O state may be changed.
    pub(crate) fn freeze(&self) -> Frozen<'_, T> {
        let guard = self.freeze_lock.lock();
        let noio = TaskFlagsScope::no_io();
        // SAFETY: the queue is valid; it is unfrozen by `Frozen::drop`.
        unsafe { bindings::blk_mq_freeze_queue_nomemsave(self.queue()) };
        Frozen {
            disk: self,
            _noio: noio,
            _guard: guard,
        }
    }

    /// Begins a queue-limits update (takes the queue's `limits_lock`; take it
    /// before freezing, as the block core does).
    pub(crate) fn start_limits_update(&self) -> LimitsUpdate<'_, T> {
        let q = self.queue();
        // SAFETY: `limits_lock` is a valid mutex of the queue; the limits are
        // stable while it is held (this is `queue_limits_start_update`).
        let limits = unsafe {
            bindings::mutex_lock(&raw mut (*q).limits_lock);
            ptr::read(&raw const (*q).limits)
        };
        LimitsUpdate {
            disk: self,
            limits,
            committed: false,
        }
    }

    /// Publishes the I/O state of a device that starts serving requests (a
    /// bind). No freeze is needed: while the disk is not serving, no request
    /// reads the state.
    pub(crate) fn start_serving(&self, state: T::IoState) {
        let _guard = self.freeze_lock.lock();
        if self.serving.load(Ordering::SeqCst) {
            drop(_guard);
            *self.freeze().io_state() = state;
            return;
        }
        // SAFETY: `freeze_lock` is held and `serving` is clear: since the last
        // `stop_serving` drained them, no request has entered the state (type
        // invariant), so nobody reads it.
        unsafe { *self.io_state.get() = state };
        self.serving.store(true, Ordering::SeqCst);
    }

    /// Stops serving requests (an unbind) and replaces the I/O state once the
    /// requests that still read it are gone. Called on the last close, when
    /// none is expected; the wait only covers stragglers.
    pub(crate) fn stop_serving(&self, state: T::IoState) {
        let _guard = self.freeze_lock.lock();
        // SeqCst pairs with `enter_io_state`: either a request's increment is
        // seen here, or that request sees `serving` clear.
        self.serving.store(false, Ordering::SeqCst);
        while self.io_state_readers.load(Ordering::SeqCst) != 0 {
            msleep(1);
        }
        // SAFETY: `freeze_lock` is held, `serving` is clear and every request
        // that saw it set has left (type invariant).
        unsafe { *self.io_state.get() = state };
    }

    /// Lets a request read the I/O state, if the disk is serving. A request
    /// that got it must call `leave_io_state` after its last use of it.
    fn enter_io_state(&self) -> Option<&T::IoState> {
        self.io_state_readers.fetch_add(1, Ordering::SeqCst);
        if self.serving.load(Ordering::SeqCst) {
            // SAFETY: counted as a reader while `serving` is set: no writer
            // runs until `leave_io_state` (type invariant).
            Some(unsafe { &*self.io_state.get() })
        } else {
            self.io_state_readers.fetch_sub(1, Ordering::SeqCst);
            None
        }
    }

    /// Ends a request's use of the I/O state (see `enter_io_state`).
    fn leave_io_state(&self) {
        self.io_state_readers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[pinned_drop]
impl<T: DiskOps> PinnedDrop for Disk<T> {
    fn drop(self: Pin<&mut Self>) {
        if !self.added.load(Ordering::Acquire) {
            // SAFETY: never added, so nobody else holds the disk or tag set.
            unsafe {
                bindings::put_disk(self.raw());
                bindings::blk_mq_free_tag_set(self.tag_set.get());
            }
        }
        self.destroy_ordered_wq();
    }
}

/// Proof that the disk's `open_mutex` is held by the caller.
pub(crate) struct OpenMutexToken(());

/// Whether `open_mutex` is held around a partition rescan.
pub(crate) enum OpenMutexHeld {
    No,
    ByCaller(OpenMutexToken),
}

/// A frozen queue: no request is in flight.
pub(crate) struct Frozen<'a, T: DiskOps> {
    disk: &'a Disk<T>,
    _noio: TaskFlagsScope,
    _guard: kernel::sync::MutexGuard<'a, ()>,
}

impl<T: DiskOps> Frozen<'_, T> {
    /// Exclusive access to the I/O state: no request is in flight and no other
    /// freezer exists (`freeze_lock`).
    pub(crate) fn io_state(&mut self) -> &mut T::IoState {
        // SAFETY: see the type invariant of `Disk`.
        unsafe { &mut *self.disk.io_state.get() }
    }
}

impl<T: DiskOps> Drop for Frozen<'_, T> {
    fn drop(&mut self) {
        // SAFETY: frozen by `Disk::freeze`.
        unsafe { bindings::blk_mq_unfreeze_queue_nomemrestore(self.disk.queue()) };
    }
}

/// Queue limits being changed; the queue's `limits_lock` is held.
pub(crate) struct LimitsUpdate<'a, T: DiskOps> {
    disk: &'a Disk<T>,
    limits: bindings::queue_limits,
    committed: bool,
}

impl<T: DiskOps> LimitsUpdate<'_, T> {
    pub(crate) fn set_block_size(&mut self, size: u32) {
        self.limits.logical_block_size = size;
        self.limits.physical_block_size = size;
        self.limits.io_min = size;
    }

    pub(crate) fn set_write_cache(&mut self, write_cache: bool, fua: bool) {
        self.limits.features &= !(BLK_FEAT_WRITE_CACHE | BLK_FEAT_FUA);
        if write_cache {
            self.limits.features |= BLK_FEAT_WRITE_CACHE;
            if fua {
                self.limits.features |= BLK_FEAT_FUA;
            }
        }
    }

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
        // SAFETY: `limits_lock` is held (taken in `start_limits_update`);
        // `queue_limits_commit_update` validates, applies and unlocks it.
        to_result(unsafe {
            bindings::queue_limits_commit_update(self.disk.queue(), &mut self.limits)
        })
    }
}

impl<T: DiskOps> Drop for LimitsUpdate<'_, T> {
    fn drop(&mut self) {
        if !self.committed {
            // SAFETY: taken in `start_limits_update`, not released by a commit.
            unsafe { bindings::mutex_unlock(&raw mut (*self.disk.queue()).limits_lock) };
        }
    }
}

/// The block device an ioctl was issued on.
pub(crate) struct BlockDevice {
    raw: *mut bindings::block_device,
}

impl BlockDevice {
    /// Claims the device for a configuration change, so that nobody can mount
    /// it meanwhile (`bd_prepare_to_claim`), unless the caller opened it
    /// exclusively and so holds it already. EBUSY if someone else holds it.
    pub(crate) fn claim_unless_exclusive(&self, mode: OpenMode) -> Result<Option<BdevClaim<'_>>> {
        if mode.exclusive() {
            return Ok(None);
        }
        // SAFETY: `raw` is the live block device of the current ioctl; the
        // holder is a static of this module, unique to rust_loop.
        to_result(unsafe { bindings::bd_prepare_to_claim(self.raw, claim_holder(), ptr::null()) })?;
        Ok(Some(BdevClaim { bdev: self }))
    }

    /// Writes back and drops the device's page cache.
    pub(crate) fn sync_and_invalidate(&self) {
        // SAFETY: `raw` is the live block device of the current ioctl.
        unsafe {
            bindings::sync_blockdev(self.raw);
            bindings::invalidate_bdev(self.raw);
        }
    }
}

/// The unique holder of rust_loop's temporary block-device claims.
fn claim_holder() -> *mut c_void {
    static HOLDER: u8 = 0;
    ptr::from_ref(&HOLDER).cast_mut().cast()
}

/// A prepared claim, aborted on drop (`bd_abort_claiming`).
pub(crate) struct BdevClaim<'a> {
    bdev: &'a BlockDevice,
}

impl Drop for BdevClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: the claim was prepared by `claim_unless_exclusive` with this holder.
        unsafe { bindings::bd_abort_claiming(self.bdev.raw, claim_holder()) };
    }
}

/// The C callbacks of a disk type `T`.
struct DiskVTable<T: DiskOps>(PhantomData<T>);

/// A C vtable in a `static`: raw pointers are not `Sync`, but the tables are
/// immutable.
#[repr(transparent)]
struct SyncTable<V>(V);
// SAFETY: the tables are never written after initialisation.
unsafe impl<V> Sync for SyncTable<V> {}

impl<T: DiskOps> DiskVTable<T> {
    const FOPS: SyncTable<bindings::block_device_operations> =
        SyncTable(bindings::block_device_operations {
            open: Some(Self::open_callback),
            release: Some(Self::release_callback),
            ioctl: Some(Self::ioctl_callback),
            compat_ioctl: Some(Self::compat_ioctl_callback),
            free_disk: Some(Self::free_disk_callback),
            // `__this_module` is constructed by the kernel at load time and
            // outlives every disk of the module.
            owner: (&raw const bindings::__this_module).cast_mut(),
            // SAFETY: all-zero is valid for the remaining (optional) callbacks.
            ..unsafe { MaybeUninit::zeroed().assume_init() }
        });

    const MQ_OPS: SyncTable<bindings::blk_mq_ops> = SyncTable(bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq_callback),
        init_request: Some(Self::init_request_callback),
        // SAFETY: all-zero is valid for the remaining (optional) callbacks.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    });

    /// # Safety
    ///
    /// `disk` is a disk created by `Disk::<T>::new` and added by `Disk::add`.
    unsafe fn owner<'a>(disk: *mut bindings::gendisk) -> ArcBorrow<'a, T> {
        // SAFETY: `private_data` holds an `Arc<T>` from `Disk::add` until
        // `free_disk`, which cannot run while the block core calls us.
        unsafe { <Arc<T> as ForeignOwnable>::borrow((*disk).private_data) }
    }

    /// # Safety
    ///
    /// Only called by the block core, on a disk added by `Disk::add`.
    unsafe extern "C" fn open_callback(
        disk: *mut bindings::gendisk,
        _mode: bindings::blk_mode_t,
    ) -> c_int {
        // SAFETY: called by the block core on one of our added disks.
        let owner = unsafe { Self::owner(disk) };
        match owner.open() {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Only called by the block core, on a disk added by `Disk::add`, with `open_mutex` held.
    unsafe extern "C" fn release_callback(disk: *mut bindings::gendisk) {
        // SAFETY: called by the block core on one of our added disks.
        let owner = unsafe { Self::owner(disk) };
        // The block core holds `open_mutex` around `->release`.
        owner.release(owner.disk().openers(), OpenMutexToken(()));
    }

    /// # Safety
    ///
    /// Only called by `ioctl_callback`/`compat_ioctl_callback`, with their guarantees.
    unsafe extern "C" fn ioctl_common(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
        compat: bool,
    ) -> c_int {
        // SAFETY: the block core passes the live block device of one of our
        // added disks.
        let owner = unsafe { Self::owner((*bdev).bd_disk) };
        let bdev = BlockDevice { raw: bdev };
        match owner.ioctl(&bdev, OpenMode(mode), cmd, arg, compat) {
            Ok(v) => v,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Only called by the block core (or the misc core, for the control device), for an open device of this driver.
    unsafe extern "C" fn ioctl_callback(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // SAFETY: forwarded from the block core with its guarantees.
        unsafe { Self::ioctl_common(bdev, mode, cmd, arg, false) }
    }

    /// # Safety
    ///
    /// Only called by the block core, for an open disk of this driver.
    unsafe extern "C" fn compat_ioctl_callback(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // A compat pointer argument is a zero-extended 32-bit address, valid
        // as is on x86_64 (`compat_ptr`).
        // SAFETY: forwarded from the block core with its guarantees.
        unsafe { Self::ioctl_common(bdev, mode, cmd, arg, true) }
    }

    /// # Safety
    ///
    /// Only called by the block core, once, when the last reference to a disk of this driver is dropped.
    unsafe extern "C" fn free_disk_callback(disk: *mut bindings::gendisk) {
        // SAFETY: the last reference to the disk is gone: release the owner
        // reference taken in `Disk::add`.
        unsafe {
            drop(<Arc<T> as ForeignOwnable>::from_foreign(
                (*disk).private_data,
            ))
        };
    }

    /// # Safety
    ///
    /// Only called by blk-mq, for a request of a tag set created by `Disk::new`.
    unsafe extern "C" fn init_request_callback(
        _set: *mut bindings::blk_mq_tag_set,
        rq: *mut bindings::request,
        _hctx_idx: c_uint,
        _numa_node: c_int,
    ) -> c_int {
        // SAFETY: `rq` is a request of our tag set, whose PDU is a `RequestPdu`
        // (`cmd_size`); the work item is initialised once, here.
        unsafe {
            let pdu = bindings::blk_mq_rq_to_pdu(rq).cast::<RequestPdu>();
            bindings::init_work_with_key(
                &raw mut (*pdu).work,
                Some(Self::work_callback),
                false,
                c"rloop_request".as_char_ptr(),
                kernel::static_lock_class!().as_ptr(),
            );
        }
        0
    }

    /// # Safety
    ///
    /// Only called by blk-mq, for a request of a queue of a disk created by `Disk::new`.
    unsafe extern "C" fn queue_rq_callback(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: blk-mq passes a valid request of one of our queues; its
        // `queuedata` is the owner pointer set in `Disk::add`, valid while the
        // queue has requests.
        unsafe {
            let rq = (*bd).rq;
            let owner = <Arc<T> as ForeignOwnable>::borrow((*(*hctx).queue).queuedata);
            bindings::blk_mq_start_request(rq);
            // INVARIANT: the request was started above and is ended either by
            // the returned error status or by the work item.
            let request = Request {
                raw: NonNull::new_unchecked(rq),
            };
            let disk = owner.disk();
            let dispatch = match disk.enter_io_state() {
                Some(io) => owner.queue_rq(io, &request),
                // Not bound: no state to read, and nothing to leave.
                None => {
                    request.set_quiet();
                    return BLK_STS_IOERR;
                }
            };
            match dispatch {
                Dispatch::Fail => {
                    disk.leave_io_state();
                    request.set_quiet();
                    return BLK_STS_IOERR;
                }
                // The work item leaves the state when it is done with it.
                Dispatch::Defer => {
                    let pdu = bindings::blk_mq_rq_to_pdu(rq).cast::<RequestPdu>();
                    queue_io_work(&raw mut (*pdu).work, None);
                }
                // The ordered workqueue lives until the disk is deleted,
                // after its last request.
                Dispatch::DeferInOrder => {
                    let pdu = bindings::blk_mq_rq_to_pdu(rq).cast::<RequestPdu>();
                    let wq = NonNull::new(disk.ordered_wq.load(Ordering::Acquire));
                    queue_io_work(&raw mut (*pdu).work, wq);
                }
            }
        }
        BLK_STS_OK
    }

    /// # Safety
    ///
    /// Only called by the workqueue, for a work item queued by `queue_rq_callback`.
    unsafe extern "C" fn work_callback(work: *mut bindings::work_struct) {
        // SAFETY: `work` is the work item inside the PDU of a request started
        // by `queue_rq_callback`; the request stays in flight (and its queue
        // and owner alive) until it is ended below.
        unsafe {
            let pdu = kernel::container_of!(work, RequestPdu, work);
            let rq = bindings::blk_mq_rq_from_pdu(pdu.cast::<c_void>());
            let owner = <Arc<T> as ForeignOwnable>::borrow((*(*rq).q).queuedata);
            let request = Request {
                raw: NonNull::new_unchecked(rq),
            };
            let status = {
                let _backing_io = TaskFlagsScope::backing_io();
                // `queue_rq_callback` entered the state for this request and
                // deferred it without leaving.
                let io = &*owner.disk().io_state.get();
                let status = owner.handle_request(io, &request);
                owner.disk().leave_io_state();
                status
            };
            bindings::blk_mq_end_request(rq, status);
        }
    }
}

// ---------------------------------------------------------------------------
// sysfs: the `loop/` attribute group.
// ---------------------------------------------------------------------------

/// The files of the `loop/` group: attribute, name, mode.
const LOOP_ATTRS: [(LoopAttr, &CStr, u16); 7] = [
    (LoopAttr::BackingFile, c"backing_file", 0o444),
    (LoopAttr::Offset, c"offset", 0o444),
    (LoopAttr::Sizelimit, c"sizelimit", 0o444),
    (LoopAttr::Autoclear, c"autoclear", 0o444),
    (LoopAttr::Partscan, c"partscan", 0o444),
    (LoopAttr::Dio, c"dio", 0o444),
    (LoopAttr::FaultInject, c"fault_inject", 0o644),
];

/// One `device_attribute` of the group, built at compile time.
const fn loop_attr(i: usize) -> SyncTable<bindings::device_attribute> {
    let (_, name, mode) = LOOP_ATTRS[i];
    // SAFETY: all-zero is a valid `device_attribute` (no callbacks).
    let mut a: bindings::device_attribute = unsafe { MaybeUninit::zeroed().assume_init() };
    a.attr.name = kernel::str::as_char_ptr_in_const_context(name);
    a.attr.mode = mode;
    a.__bindgen_anon_1.show = Some(sysfs_show);
    if mode & 0o200 != 0 {
        a.__bindgen_anon_2.store = Some(sysfs_store);
    }
    SyncTable(a)
}

/// The attributes of the `loop/` group (immutable statics: sysfs only reads them).
static LOOP_DEV_ATTRS: [SyncTable<bindings::device_attribute>; 7] = [
    loop_attr(0),
    loop_attr(1),
    loop_attr(2),
    loop_attr(3),
    loop_attr(4),
    loop_attr(5),
    loop_attr(6),
];

/// The NULL-terminated attribute list of the group.
static LOOP_ATTR_LIST: SyncTable<[*const bindings::attribute; 8]> = SyncTable([
    &raw const LOOP_DEV_ATTRS[0].0.attr,
    &raw const LOOP_DEV_ATTRS[1].0.attr,
    &raw const LOOP_DEV_ATTRS[2].0.attr,
    &raw const LOOP_DEV_ATTRS[3].0.attr,
    &raw const LOOP_DEV_ATTRS[4].0.attr,
    &raw const LOOP_DEV_ATTRS[5].0.attr,
    &raw const LOOP_DEV_ATTRS[6].0.attr,
    ptr::null(),
]);

/// `/sys/block/rloopN/loop/`.
static LOOP_ATTR_GROUP: SyncTable<bindings::attribute_group> = {
    // SAFETY: all-zero is a valid empty `attribute_group`.
    let mut group: bindings::attribute_group = unsafe { MaybeUninit::zeroed().assume_init() };
    group.name = kernel::str::as_char_ptr_in_const_context(c"loop");
    group.__bindgen_anon_2.attrs_const = LOOP_ATTR_LIST.0.as_ptr();
    SyncTable(group)
};

/// The device type behind the sysfs callbacks and the probe hook.
type LoopDevice = crate::device::LoopDevice;

/// Finds the attribute and the disk's `private_data` behind a sysfs callback.
///
/// # Safety
///
/// `dev` is the device of a disk (part0) and `attr` one of `LOOP_DEV_ATTRS`.
unsafe fn sysfs_target(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
) -> (LoopAttr, *mut c_void) {
    // SAFETY: per the function contract, `attr` points into `LOOP_DEV_ATTRS`
    // and `dev` is embedded in a `block_device` (`dev_to_disk`).
    unsafe {
        let index = attr.cast_const().offset_from(&LOOP_DEV_ATTRS[0].0) as usize;
        let bdev = kernel::container_of!(dev, bindings::block_device, bd_device);
        (LOOP_ATTRS[index].0, (*(*bdev).bd_disk).private_data)
    }
}

/// # Safety
///
/// Only called by sysfs, for an attribute of `LOOP_ATTR_GROUP` on a disk of this driver.
unsafe extern "C" fn sysfs_show(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: sysfs calls us with one of our attributes on a disk's device,
    // and `buf` is a PAGE_SIZE buffer.
    let (attr, private) = unsafe { sysfs_target(dev, attr) };
    // SAFETY: `buf` is a writable page (sysfs contract).
    let page =
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
    let mut out = Formatter::new(page);
    // SAFETY: `private` is the `private_data` of a live rloop disk: its
    // sysfs files are removed before the disk goes away.
    let owner = unsafe { <Arc<LoopDevice> as ForeignOwnable>::borrow(private) };
    match owner.show(attr, &mut out) {
        Ok(()) => out.bytes_written() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Only called by sysfs, for an attribute of `LOOP_ATTR_GROUP` on a disk of this driver.
unsafe extern "C" fn sysfs_store(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: sysfs calls us with one of our attributes on a disk's device.
    let (attr, private) = unsafe { sysfs_target(dev, attr) };
    // SAFETY: `buf` holds `count` readable bytes (sysfs contract).
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    // SAFETY: as in `sysfs_show`.
    let owner = unsafe { <Arc<LoopDevice> as ForeignOwnable>::borrow(private) };
    match owner.store(attr, input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

// ---------------------------------------------------------------------------
// The block major with its probe hook.
// ---------------------------------------------------------------------------

/// A registered block major. `control::probe` is called when a node of this
/// major without a disk is opened (the legacy autoload hook loop.c uses too).
pub(crate) struct BlockMajor {
    major: u32,
    name: &'static CStr,
}

impl BlockMajor {
    /// Registers `major` (0: allocate one).
    pub(crate) fn register(major: u32, name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is a static C string; `probe_callback` is valid for
        // the life of the registration (module text).
        let ret =
            unsafe { bindings::__register_blkdev(major, name.as_char_ptr(), Some(probe_callback)) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        let major = if major == 0 { ret as u32 } else { major };
        Ok(Self { major, name })
    }

    pub(crate) fn number(&self) -> u32 {
        self.major
    }
}

impl Drop for BlockMajor {
    fn drop(&mut self) {
        // SAFETY: registered by `register` with this name.
        unsafe { bindings::unregister_blkdev(self.major, self.name.as_char_ptr()) };
    }
}

/// # Safety
///
/// Only called by the block core, for a device number of the registered major.
unsafe extern "C" fn probe_callback(devt: bindings::dev_t) {
    crate::control::probe(devt);
}

// ---------------------------------------------------------------------------
// The device registry lock (loop.c's `loop_ctl_mutex`).
// ---------------------------------------------------------------------------

kernel::sync::global_lock! {
    // SAFETY: initialised by `init_registry` in module init before any use.
    pub(crate) unsafe(uninit) static REGISTRY: Mutex<crate::control::Registry> =
        crate::control::Registry::new();
}

/// Initialises [`REGISTRY`]. Called once, first thing in module init.
pub(crate) fn init_registry() {
    // SAFETY: called once from module init, before any other use of REGISTRY.
    unsafe { REGISTRY.init() };
}

// ---------------------------------------------------------------------------
// The control device.
// ---------------------------------------------------------------------------

/// The driver logic behind `/dev/rloop-control`.
pub(crate) trait ControlOps {
    fn ioctl(cmd: u32, arg: usize) -> Result<i32>;
}

/// A registered misc device whose fops pin the module while it is open (the
/// kernel crate's `MiscDeviceRegistration` leaves `owner` unset).
#[pin_data(PinnedDrop)]
pub(crate) struct ControlDevice<T: ControlOps + 'static> {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    _ops: PhantomData<T>,
}

// SAFETY: the misc device is only touched at registration and deregistration.
unsafe impl<T: ControlOps> Send for ControlDevice<T> {}
// SAFETY: see above.
unsafe impl<T: ControlOps> Sync for ControlDevice<T> {}

impl<T: ControlOps + 'static> ControlDevice<T> {
    const FOPS: SyncTable<bindings::file_operations> = SyncTable(bindings::file_operations {
        // `__this_module` is constructed by the kernel at load time and
        // outlives the registration.
        owner: (&raw const bindings::__this_module).cast_mut(),
        unlocked_ioctl: Some(Self::ioctl_callback),
        compat_ioctl: Some(Self::ioctl_callback),
        // SAFETY: all-zero is valid for the remaining (optional) callbacks.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    });

    pub(crate) fn register(name: &'static CStr) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                // SAFETY: `slot` is pinned, zero-able memory for the misc
                // device; name and fops are statics.
                unsafe {
                    slot.write(MaybeUninit::zeroed().assume_init());
                    (*slot).minor = bindings::MISC_DYNAMIC_MINOR as c_int;
                    (*slot).name = name.as_char_ptr();
                    (*slot).fops = &Self::FOPS.0;
                    (*slot).mode = 0o660;
                    to_result(bindings::misc_register(slot))
                }
            }),
            _ops: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Only called by the block core (or the misc core, for the control device), for an open device of this driver.
    unsafe extern "C" fn ioctl_callback(
        _file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        match T::ioctl(cmd, arg) {
            Ok(v) => v as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }
}

#[pinned_drop]
impl<T: ControlOps> PinnedDrop for ControlDevice<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered in `register` (a failed registration never
        // constructs `Self`).
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}
