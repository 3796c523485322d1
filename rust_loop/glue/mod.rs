// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the C interfaces the 7.2 `kernel` crate does not cover.
//!
//! The 7.2 `kernel` crate's block abstraction cannot express a loop driver (no
//! fops, no request accessors, no gendisk access; see rfl-api.md §2), so this
//! module wraps the raw C interfaces the driver needs into small safe types.
//! It is the only place of rust_loop allowed to use `unsafe` (besides the
//! byte views of the uAPI structures, see `uapi.rs`): the crate root denies
//! `unsafe_code` and allows it on this module only.
//!
//! Each file wraps one kernel object and is named after the upstream module
//! it stands in for, so that moving to an upstream abstraction later means
//! deleting a file:
//!
//! - [`mq`]: the disk, its tag set, requests, queue limits and freezes, and the
//!   block operations the driver implements ([`mq::DiskOps`]).
//! - [`file`]: a backing file ([`BackingFile`]).
//! - [`bdev`]: the block device an ioctl arrived on ([`BlockDevice`]).
//! - [`major`]: the block major with its probe hook ([`BlockProbe`]).
//! - [`misc`]: the control misc device ([`MiscOps`]).
//! - [`param`]: boolean module parameters (`module!` has integers only).
//! - [`sysfs`]: an attribute group of a disk ([`SysfsOps`]).
//! - [`workqueue`]: the I/O workqueues.
//! - [`task`]: task flags, capabilities.
//! - [`random`]: random numbers.
//!
//! The glue imports nothing from the driver: the C callbacks reach the driver
//! through the traits above, which the driver implements.

pub(crate) mod bdev;
pub(crate) mod blkcg;
pub(crate) mod file;
pub(crate) mod major;
pub(crate) mod misc;
pub(crate) mod mq;
pub(crate) mod param;
pub(crate) mod random;
pub(crate) mod sysfs;
pub(crate) mod task;
pub(crate) mod workqueue;

use kernel::{
    bindings,
    prelude::*, //
};

pub(crate) use bdev::{
    BlockDevice,
    OpenMode, //
};
pub(crate) use file::BackingFile;
pub(crate) use major::{
    BlockMajor,
    BlockProbe, //
};
pub(crate) use misc::{
    MiscDevice,
    MiscOps, //
};
pub(crate) use sysfs::SysfsOps;

/// `EOPNOTSUPP`, which `kernel::error::code` lacks.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// `ENOSYS`, which `kernel::error::code` lacks.
pub(crate) fn enosys() -> Error {
    Error::from_errno(-(bindings::ENOSYS as i32))
}

/// A C table (vtable, attribute, attribute group) in a `static` or a `const`:
/// raw pointers are not `Sync`, but the tables are immutable.
#[repr(transparent)]
pub(crate) struct SyncTable<V>(pub(crate) V);

// SAFETY: The tables are never written after initialisation, so sharing them
// between threads only ever reads them.
unsafe impl<V> Sync for SyncTable<V> {}
