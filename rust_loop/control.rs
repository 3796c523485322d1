// SPDX-License-Identifier: GPL-2.0

//! The device registry and the control device, `/dev/rloop-control` or, in
//! drop-in mode, `/dev/loop-control` (LOOP_CTL_ADD / REMOVE / GET_FREE), plus
//! the on-open probe that creates devices on demand.
//!
//! The registry lock is loop.c's `loop_ctl_mutex`: it guards the set of
//! devices only. Opening or closing a device never takes it.

use crate::{
    device::LoopDevice,
    glue::{
        self,
        mq::QueueShape,
        BlockProbe,
        MiscOps, //
    },
    uapi::{
        LOOP_CTL_ADD,
        LOOP_CTL_GET_FREE,
        LOOP_CTL_REMOVE, //
    },
};
use kernel::{
    bindings::MINORBITS,
    prelude::*,
    sync::Arc, //
};

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init_registry`, first thing in module init,
    // before any other use.
    unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

/// The devices and the numbering fixed at module load.
pub(crate) struct Registry {
    devices: KVec<Arc<LoopDevice>>,
    /// Numbers of devices being created outside the lock (see [`add`]).
    creating: KVec<u32>,
    /// Set at module unload: no device may be added any more.
    closing: bool,
    /// Device names: `rloop`, or `loop` in drop-in mode.
    name_prefix: &'static str,
    major: u32,
    part_shift: u32,
    queue_shape: QueueShape,
}

impl Registry {
    pub(crate) const fn new() -> Self {
        Self {
            devices: KVec::new(),
            creating: KVec::new(),
            closing: false,
            name_prefix: "rloop",
            major: 0,
            part_shift: 0,
            queue_shape: QueueShape {
                hw_queues: 1,
                depth: 128,
            },
        }
    }

    /// Largest device number the minor space allows.
    fn max_number(&self) -> u32 {
        (1 << (MINORBITS - self.part_shift)) - 1
    }

    fn find(&self, number: u32) -> Option<&Arc<LoopDevice>> {
        self.devices.iter().find(|d| d.number() == number)
    }

    fn is_taken(&self, number: u32) -> bool {
        self.find(number).is_some() || self.creating.contains(&number)
    }

    /// Picks the number of a new device (a negative `requested` takes the
    /// lowest free one) and marks it as being created.
    fn reserve(&mut self, requested: i32) -> Result<u32> {
        // Not yet (no major) or no longer (module unload).
        if self.major == 0 || self.closing {
            return Err(ENODEV);
        }
        let number = match u32::try_from(requested) {
            Ok(n) if n > self.max_number() => return Err(EINVAL),
            Ok(n) if self.is_taken(n) => return Err(EEXIST),
            Ok(n) => n,
            Err(_) => (0..=self.max_number())
                .find(|&n| !self.is_taken(n))
                .ok_or(ENOSPC)?,
        };
        self.creating.push(number, GFP_KERNEL)?;
        Ok(number)
    }
}

/// Whether GET_FREE hands the new device out (see [`LoopDevice::hand_out`]).
#[derive(PartialEq, Eq)]
enum HandOut {
    No,
    Yes,
}

/// loop.c's `loop_add`. As in loop.c, the registry lock is held only to pick
/// the number and to record the device: devices are created in parallel.
fn add(requested: i32, hand_out: HandOut) -> Result<u32> {
    let (name_prefix, number, major, part_shift, queue_shape) = {
        let mut registry = REGISTRY.lock();
        let number = registry.reserve(requested)?;
        (
            registry.name_prefix,
            number,
            registry.major,
            registry.part_shift,
            registry.queue_shape,
        )
    };
    let created = LoopDevice::create(name_prefix, number, major, part_shift, queue_shape);
    let mut registry = REGISTRY.lock();
    registry.creating.retain(|&mut n| n != number);
    let device = created?;
    if hand_out == HandOut::Yes {
        device.hand_out();
    }
    if registry.closing {
        drop(registry);
        device.remove(false);
        return Err(ENODEV);
    }
    if let Err(e) = registry.devices.push(device.clone(), GFP_KERNEL) {
        drop(registry);
        device.remove(false);
        return Err(e.into());
    }
    Ok(number)
}

/// Sets up the registry, first thing at module load: the control device and
/// the major's probe may use it as soon as they are registered.
///
/// It must run once, before anything else uses the registry.
// `global_lock!`'s static can only be initialised in an `unsafe` call, whose
// contract (once, before any use) only module init can keep: the one
// `unsafe` of the driver outside `glue` and the uAPI byte views.
#[allow(unsafe_code)]
pub(crate) fn init_registry(name_prefix: &'static str, part_shift: u32, queue_shape: QueueShape) {
    // SAFETY: `GlobalLock::init` must be called once, before any other use of
    // the lock: module init calls this function once, first, before the
    // control device and the major (the only other users) are registered.
    unsafe { REGISTRY.init() };
    let mut registry = REGISTRY.lock();
    registry.name_prefix = name_prefix;
    registry.part_shift = part_shift;
    registry.queue_shape = queue_shape;
}

/// Records the block major once it is registered, the last step that can
/// fail before devices exist: devices can be created from then on.
pub(crate) fn set_major(major: u32) {
    REGISTRY.lock().major = major;
}

/// Creates the first `count` devices. A number the probe took meanwhile
/// (EEXIST) is not an error.
pub(crate) fn create_initial_devices(count: u32) -> Result {
    for number in 0..count {
        match add(number as i32, HandOut::No) {
            Err(e) if e == EEXIST => {}
            result => {
                result?;
            }
        }
    }
    Ok(())
}

/// Removes every device (module unload). Bound devices are unbound first:
/// the module can only go away when nothing is open.
pub(crate) fn remove_all() {
    let devices = {
        let mut registry = REGISTRY.lock();
        // The probe hook stays registered until the major goes, after us.
        registry.closing = true;
        // The registry is a static that is never dropped: free the vectors'
        // buffers here, or every load leaks them (kmemleak saw `creating`).
        drop(core::mem::take(&mut registry.creating));
        core::mem::take(&mut registry.devices)
    };
    for device in devices.iter() {
        device.remove(true);
    }
}

fn remove(arg: usize) -> Result<i32> {
    // The argument is an int in loop.c; "remove any" is not supported.
    let number = u32::try_from(arg as i32).map_err(|_| EINVAL)?;
    let device = {
        let mut registry = REGISTRY.lock();
        let index = registry
            .devices
            .iter()
            .position(|d| d.number() == number)
            .ok_or(ENODEV)?;
        registry.devices[index].begin_removal()?;
        registry.devices.remove(index)?
    };
    device.remove(false);
    Ok(0)
}

fn get_free() -> Result<i32> {
    let registry = REGISTRY.lock();
    if let Some(device) = registry
        .devices
        .iter()
        .filter(|d| d.is_free())
        .min_by_key(|d| d.number())
    {
        device.hand_out();
        return Ok(device.number() as i32);
    }
    drop(registry);
    add(-1, HandOut::Yes).map(|n| n as i32)
}

/// The control device and the block major's probe hook.
pub(crate) struct Control;

impl BlockProbe for Control {
    /// The block core's hook for opening a node of our major without a disk.
    fn probe(devt: u32) {
        let number = (devt & ((1 << MINORBITS) - 1)) >> REGISTRY.lock().part_shift;
        // A failed on-demand creation (EEXIST included: the device appeared
        // meanwhile) just leaves the node as it is, as in loop.c.
        let _ = add(number as i32, HandOut::No);
    }
}

impl MiscOps for Control {
    fn ioctl(cmd: u32, arg: usize) -> Result<i32> {
        match cmd {
            // The argument is an int in loop.c: a negative one means "any".
            LOOP_CTL_ADD => add(arg as i32, HandOut::No).map(|n| n as i32),
            LOOP_CTL_REMOVE => remove(arg),
            LOOP_CTL_GET_FREE => get_free(),
            _ => Err(glue::enosys()),
        }
    }
}
