// SPDX-License-Identifier: GPL-2.0

//! A blk-mq tag set (`struct blk_mq_tag_set`): one hardware queue whose
//! requests carry a [`RequestPdu`], served by the vtable of a [`DiskOps`] type.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h)

use super::{
    operations::DiskVTable,
    request::RequestPdu,
    DiskOps, //
};
use kernel::{
    bindings,
    error::to_result,
    ffi::c_uint,
    prelude::*,
    types::Opaque, //
};

/// An allocated tag set. It has no `Drop`: the disk allocated on it decides
/// when it is freed (loop.c's order is delete the disk, free the tag set, put
/// the disk), with [`TagSet::free`].
///
/// How many hardware queues a disk has, and how many requests each holds.
#[derive(Clone, Copy)]
pub(crate) struct QueueShape {
    /// Hardware queues: blk-mq maps every CPU onto one of them, so requests
    /// submitted on different CPUs never share a queue's lock or tags.
    pub(crate) hw_queues: u32,
    /// Requests in flight per hardware queue.
    pub(crate) depth: u32,
}

impl QueueShape {
    /// One hardware queue per possible CPU (`nr_cpu_ids`).
    pub(crate) fn per_cpu(depth: u32) -> Self {
        // SAFETY: `nr_cpu_ids` is set during early boot and never changes
        // once modules can load.
        let cpus = unsafe { bindings::nr_cpu_ids };
        Self {
            hw_queues: cpus.max(1),
            depth,
        }
    }
}

/// # Invariants
///
/// `raw` is boxed (address-stable) and was allocated by
/// `blk_mq_alloc_tag_set`; it is valid until `free`.
pub(crate) struct TagSet {
    raw: KBox<Opaque<bindings::blk_mq_tag_set>>,
}

impl TagSet {
    /// Allocates a tag set of the given shape for disks of type `T`.
    pub(crate) fn new<T: DiskOps>(shape: QueueShape) -> Result<Self> {
        let raw = KBox::new(Opaque::<bindings::blk_mq_tag_set>::zeroed(), GFP_KERNEL)?;
        let set = raw.get();
        // SAFETY: `set` points to zeroed, boxed memory that we own and nobody
        // else sees yet.
        let fields = unsafe { &mut *set };
        // The fields set are those `blk_mq_alloc_tag_set` reads.
        fields.ops = &DiskVTable::<T>::MQ_OPS.0;
        fields.nr_hw_queues = shape.hw_queues;
        fields.nr_maps = 1;
        fields.queue_depth = shape.depth;
        fields.numa_node = bindings::NUMA_NO_NODE;
        fields.cmd_size = core::mem::size_of::<RequestPdu>() as c_uint;
        // Not BLOCKING: `queue_rq` only hands requests to workers.
        fields.flags = bindings::BLK_MQ_F_STACKING | bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
        // SAFETY: `blk_mq_alloc_tag_set` needs a set filled in as above, at an
        // address that stays put until it is freed: the box's.
        to_result(unsafe { bindings::blk_mq_alloc_tag_set(set) })?;
        // INVARIANT: Allocated above, in a box.
        Ok(Self { raw })
    }

    /// The C tag set.
    pub(crate) fn as_raw(&self) -> *mut bindings::blk_mq_tag_set {
        self.raw.get()
    }

    /// Frees the tag set (`blk_mq_free_tag_set`).
    ///
    /// # Safety
    ///
    /// Called once; no disk uses the tag set any more (it was deleted or put).
    pub(crate) unsafe fn free(&self) {
        // SAFETY: Allocated (type invariant), freed only once and unused
        // (function contract), as `blk_mq_free_tag_set` requires.
        unsafe { bindings::blk_mq_free_tag_set(self.raw.get()) };
    }
}
