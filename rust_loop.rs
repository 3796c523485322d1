// SPDX-License-Identifier: GPL-2.0

//! rust_loop: the loop block driver in Rust.
//!
//! `/dev/rloopN` block devices (block major 7, like loop.c) backed by files,
//! driven with util-linux `losetup` through loop.c's ioctls, plus
//! `/dev/rloop-control`. loop.c (`loop.ko`) must not be loaded at the same
//! time; if major 7 is taken anyway, rust_loop falls back to a dynamic major.
//!
//! Layout: `ffi` holds every `unsafe` line (the C interfaces wrapped into safe
//! types); `device` is one device's state machine, ioctls and request path;
//! `control` is the device registry and the control device; `fault` is the
//! fault-injection knob; `uapi` the user-space ABI.

#[path = "rust_loop/control.rs"]
mod control;
#[path = "rust_loop/device.rs"]
mod device;
#[path = "rust_loop/fault.rs"]
mod fault;
#[path = "rust_loop/ffi.rs"]
mod ffi;
#[path = "rust_loop/uapi.rs"]
mod uapi;

use ffi::{BlockMajor, ControlDevice, IoWorkQueue, MINORBITS};
use kernel::prelude::*;

module! {
    type: LoopModule,
    name: "rust_loop",
    authors: ["rust_loop developers"],
    description: "Loop block devices (/dev/rloopN) in Rust",
    license: "GPL v2",
    params: {
        max_loop: u32 {
            default: 8,
            description: "Number of rloop devices created at load (more on demand)",
        },
        max_part: u32 {
            default: 0,
            description: "Maximum partitions per device (0: partitions only with LO_FLAGS_PARTSCAN)",
        },
        major: u32 {
            default: 7,
            description: "Block major (7 = loop.c's; 0 = dynamic; falls back to dynamic if taken)",
        },
        hw_queue_depth: u32 {
            default: 128,
            description: "Queue depth of each device",
        },
    },
}

/// loop.c's `LOOP_MAJOR`.
const LOOP_MAJOR: u32 = 7;
/// `DISK_MAX_PARTS`.
const DISK_MAX_PARTS: u32 = 256;

/// Fields drop in declaration order, after [`PinnedDrop`] removed the disks:
/// the control device, the major, the workqueue. Devices can only be created
/// once the major is recorded (see `control::set_major`), so a failed load
/// leaves none behind.
#[pin_data(PinnedDrop)]
struct LoopModule {
    #[pin]
    _control: ControlDevice<control::Control>,
    _major: BlockMajor,
    _io_workqueue: IoWorkQueue,
}

/// loop.c's `part_shift`: the minor bits each device reserves for partitions.
fn part_shift(max_part: u32) -> u32 {
    if max_part == 0 {
        0
    } else {
        u32::BITS - max_part.leading_zeros()
    }
}

fn register_major(requested: u32) -> Result<BlockMajor> {
    match BlockMajor::register(requested, c"rloop") {
        Err(e) if e == EBUSY && requested != 0 => {
            pr_warn!(
                "block major {} is taken (is loop.ko loaded?); using a dynamic major: losetup < 2.40 will refuse -d, -c and -l on rloop devices\n",
                requested
            );
            BlockMajor::register(0, c"rloop")
        }
        result => result,
    }
}

/// Validates the module parameters and creates what every device needs first.
fn prepare() -> Result<IoWorkQueue> {
    let shift = part_shift(*module_parameters::max_part.value());
    let max_loop = *module_parameters::max_loop.value();
    let queue_depth = *module_parameters::hw_queue_depth.value();
    if (1 << shift) > DISK_MAX_PARTS || max_loop > 1 << (MINORBITS - shift) || queue_depth == 0 {
        return Err(EINVAL);
    }
    control::init_registry(shift, queue_depth);
    IoWorkQueue::new(c"rloop")
}

impl kernel::InPlaceModule for LoopModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _io_workqueue: prepare()?,
            _control <- ControlDevice::register(c"rloop-control"),
            _major: {
                let major = register_major(*module_parameters::major.value())?;
                if major.number() != LOOP_MAJOR {
                    pr_info!("using block major {}\n", major.number());
                }
                control::set_major(major.number());
                major
            },
        })
        .pin_chain(|_| {
            control::create_initial_devices(*module_parameters::max_loop.value())
                .inspect_err(|_| control::remove_all())
        })
    }
}

#[pinned_drop]
impl PinnedDrop for LoopModule {
    fn drop(self: Pin<&mut Self>) {
        control::remove_all();
    }
}
