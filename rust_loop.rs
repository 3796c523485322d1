// SPDX-License-Identifier: GPL-2.0

//! rust_loop: the loop block driver in Rust.
//!
//! `/dev/rloopN` block devices (block major 7, like loop.c) backed by files,
//! driven with util-linux `losetup` through loop.c's ioctls, plus
//! `/dev/rloop-control`. loop.c (`loop.ko`) must not be loaded at the same
//! time; if major 7 is taken anyway, rust_loop falls back to a dynamic major.
//!
//! With `drop_in=1` it takes loop.c's names instead (`/dev/loopN`,
//! `/dev/loop-control` on misc minor 237, block major "loop"), so that tools
//! which hard-code them (util-linux's `losetup -f`, `mount -o loop`, systemd)
//! use it; it then refuses to load beside loop.ko rather than fall back.
//!
//! Layout:
//!
//! - `glue`: safe wrappers over the C interfaces the `kernel` crate lacks, one
//!   file per kernel object (gendisk, tag set, request, queue limits, block
//!   operations, file, block device, block major, misc device, sysfs,
//!   workqueue, task). It imports nothing from the driver: the driver
//!   implements its traits (`DiskOps`, `SysfsOps`, `BlockProbe`, `MiscOps`).
//! - `device`: one device's state machine and binding, its configuration
//!   ioctls, its request execution and its sysfs files.
//! - `control`: the device registry, the control device and the probe hook.
//! - `numbers`: sets of device numbers (bitmaps) for the registry's index.
//! - `fault`: the fault-injection knob.
//! - `uapi`: the user-space ABI.
//!
//! `unsafe` code is denied in the whole crate and allowed on `glue` only, plus
//! two places that cannot avoid it: the byte views of the uAPI structures
//! (`unsafe impl FromBytes`/`AsBytes`) and the one-time initialisation of the
//! registry's global lock in `control`.

#![deny(unsafe_code)]

#[path = "rust_loop/control.rs"]
mod control;
#[path = "rust_loop/device/mod.rs"]
mod device;
#[path = "rust_loop/fault.rs"]
mod fault;
#[path = "rust_loop/glue/mod.rs"]
#[allow(unsafe_code)]
mod glue;
#[path = "rust_loop/numbers.rs"]
mod numbers;
#[path = "rust_loop/uapi.rs"]
mod uapi;

use control::Control;
use glue::{
    mq::QueueShape,
    workqueue::IoWorkQueue,
    BlockMajor,
    MiscDevice, //
};
use kernel::{
    bindings::{
        DISK_MAX_PARTS,
        LOOP_CTRL_MINOR,
        MINORBITS, //
    },
    prelude::*,
};

module! {
    type: LoopModule,
    name: "rust_loop",
    authors: ["rust_loop developers"],
    description: "Loop block devices (/dev/rloopN, or /dev/loopN with drop_in=1) in Rust",
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
            description: "Queue depth of each hardware queue",
        },
        nr_hw_queues: u32 {
            default: 0,
            description: "Hardware queues per device (0: one per CPU)",
        },
    },
}

glue::param::bool_module_param!(
    drop_in,
    "Take loop.c's names: /dev/loopN, /dev/loop-control (refuses to load beside loop.ko)"
);

/// loop.c's `LOOP_MAJOR`.
const LOOP_MAJOR: u32 = 7;

/// The names the module registers under.
struct Names {
    /// Disk names are `<disk_prefix>N`, partitions `<disk_prefix>NpM`.
    disk_prefix: &'static str,
    /// The block major's name (`/proc/devices`).
    major: &'static CStr,
    /// The control device, `/dev/<control>`.
    control: &'static CStr,
    /// The control device's misc minor (`None`: dynamic).
    control_minor: Option<u32>,
}

/// rust_loop's own names, which can live beside loop.c's.
const OWN_NAMES: Names = Names {
    disk_prefix: "rloop",
    major: c"rloop",
    control: c"rloop-control",
    control_minor: None,
};

/// loop.c's names (`loop_init`): util-linux and systemd hard-code them, and
/// the fixed minor is what the `char-major-10-237` alias and the static
/// `/dev/loop-control` node (`devname:loop-control`) point at.
const DROP_IN_NAMES: Names = Names {
    disk_prefix: "loop",
    major: c"loop",
    control: c"loop-control",
    control_minor: Some(LOOP_CTRL_MINOR),
};

fn names() -> &'static Names {
    if drop_in.get() {
        &DROP_IN_NAMES
    } else {
        &OWN_NAMES
    }
}

/// Fields drop in declaration order: the devices, the control device, the
/// major, the workqueue. Devices can only be created once the major is
/// recorded (see `control::set_major`), so a failed load leaves none behind.
#[pin_data]
struct LoopModule {
    _devices: Devices,
    // Boxed so that a failed registration can be explained in the log
    // before init fails (an in-place initialiser's error cannot be mapped).
    _control: Pin<KBox<MiscDevice<Control>>>,
    _major: BlockMajor<Control>,
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

fn register_major(requested: u32) -> Result<BlockMajor<Control>> {
    if drop_in.get() {
        // No fallback: a dynamic major is not a drop-in (losetup checks for 7).
        return BlockMajor::register(requested, DROP_IN_NAMES.major).inspect_err(|e| {
            if *e == EBUSY {
                pr_err!(
                    "drop_in=1: block major 7 is taken (is loop.ko loaded? rmmod loop first)\n"
                );
            }
        });
    }
    match BlockMajor::register(requested, OWN_NAMES.major) {
        Err(e) if e == EBUSY && requested != 0 => {
            pr_warn!(
                "block major {} is taken (is loop.ko loaded?); using a dynamic major: losetup < 2.40 will refuse -d, -c and -l on rloop devices\n",
                requested
            );
            BlockMajor::register(0, OWN_NAMES.major)
        }
        result => result,
    }
}

/// Validates the module parameters and creates what every device needs first.
fn prepare() -> Result<IoWorkQueue> {
    if drop_in.get() && *module_parameters::major.value() != LOOP_MAJOR {
        pr_err!(
            "invalid major={} with drop_in=1: loop.c's devices are on major {}\n",
            *module_parameters::major.value(),
            LOOP_MAJOR
        );
        return Err(EINVAL);
    }
    let max_part = *module_parameters::max_part.value();
    let max_loop = *module_parameters::max_loop.value();
    let queue_depth = *module_parameters::hw_queue_depth.value();
    let shift = part_shift(max_part);
    // In 64 bits, as loop.c's `1UL << part_shift`: `max_part` >= 2^31 makes
    // the shift 32, which does not fit a `u32` shift.
    if 1u64 << shift > u64::from(DISK_MAX_PARTS) {
        pr_err!(
            "invalid max_part={}: at most {} partitions per device\n",
            max_part,
            DISK_MAX_PARTS - 1
        );
        return Err(EINVAL);
    }
    if u64::from(max_loop) > 1u64 << (MINORBITS - shift) || queue_depth == 0 {
        return Err(EINVAL);
    }
    let queue_shape = match *module_parameters::nr_hw_queues.value() {
        0 => QueueShape::per_cpu(queue_depth),
        hw_queues => QueueShape {
            hw_queues,
            depth: queue_depth,
        },
    };
    control::init_registry(names().disk_prefix, shift, queue_shape);
    IoWorkQueue::new(c"rloop")
}

/// Registers the control device. In drop-in mode, loop.ko holding minor 237
/// is the likely reason for a failure: say so, since insmod only prints EBUSY.
fn register_control() -> Result<Pin<KBox<MiscDevice<Control>>>> {
    let names = names();
    KBox::pin_init(
        MiscDevice::register(names.control, names.control_minor),
        GFP_KERNEL,
    )
    .inspect_err(|e| {
        if drop_in.get() && *e == EBUSY {
            pr_err!(
                "drop_in=1: /dev/loop-control (misc minor {}) is taken: loop.ko is loaded, rmmod loop first\n",
                LOOP_CTRL_MINOR
            );
        }
    })
}

impl kernel::InPlaceModule for LoopModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _io_workqueue: prepare()?,
            _control: register_control()?,
            _major: {
                let major = register_major(*module_parameters::major.value())?;
                if major.number() != LOOP_MAJOR {
                    pr_info!("using block major {}\n", major.number());
                }
                control::set_major(major.number())?;
                major
            },
            _devices: Devices,
        })
        // On failure the module is dropped: `Devices` removes those created.
        .pin_chain(|_| control::create_initial_devices(*module_parameters::max_loop.value()))
    }
}

/// The devices of the registry, removed (unbound first) when dropped: the
/// first field of [`LoopModule`] to drop. It is initialised last, once the
/// registry exists.
struct Devices;

impl Drop for Devices {
    fn drop(&mut self) {
        control::remove_all();
    }
}
