// SPDX-License-Identifier: GPL-2.0

//! The block layer side of a disk: what `rust/kernel/block/mq/` would offer
//! if it covered a loop driver.
//!
//! - [`gen_disk`]: the disk and the I/O state its requests read.
//! - [`tag_set`]: the tag set its requests come from.
//! - [`request`]: a request, its bios and bvecs, its status.
//! - [`async_io`]: a request's asynchronous direct read or write.
//! - [`limits`]: queue limits updates and queue freezes.
//! - [`operations`]: the [`DiskOps`] trait and the C vtables that call it.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

pub(crate) mod async_io;
pub(crate) mod gen_disk;
pub(crate) mod limits;
pub(crate) mod operations;
pub(crate) mod request;
pub(crate) mod tag_set;

pub(crate) use async_io::AsyncStart;
pub(crate) use gen_disk::{
    Disk,
    DiskNumbers,
    OpenMutexHeld,
    OpenMutexToken, //
};
pub(crate) use limits::LimitsUpdate;
pub(crate) use operations::{
    DiskOps,
    Dispatch,
    RequestOutcome, //
};
pub(crate) use request::{
    BlkStatus,
    ReqOp,
    Request, //
    RequestData,
};
pub(crate) use tag_set::QueueShape;
