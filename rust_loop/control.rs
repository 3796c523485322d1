// SPDX-License-Identifier: GPL-2.0

//! The device registry and the control device, `/dev/rloop-control` or, in
//! drop-in mode, `/dev/loop-control` (LOOP_CTL_ADD / REMOVE / GET_FREE), plus
//! the on-open probe that creates devices on demand.
//!
//! The registry lock is loop.c's `loop_ctl_mutex`: it guards the set of
//! devices only. Opening or closing a device never takes it.
//!
//! Every operation costs a tree lookup or a bitmap scan, whatever the number
//! of devices: a device by number (red-black tree), the lowest free number
//! (first gap of the taken numbers), GET_FREE's lowest unbound device (first
//! member of the unbound numbers, which devices keep current under a leaf
//! lock of its own, see [`UnboundNumbers`]).

use crate::{
    device::LoopDevice,
    glue::{
        self,
        mq::QueueShape,
        BlockProbe,
        MiscOps, //
    },
    numbers::{
        NumberSet,
        UnboundNumbers, //
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
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::Arc, //
};

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init_registry`, first thing in module init,
    // before any other use.
    unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry::new();
}

/// The devices and the numbering fixed at module load.
pub(crate) struct Registry {
    /// Device names: `rloop`, or `loop` in drop-in mode.
    name_prefix: &'static str,
    /// `None` until the block major is known (see [`set_major`]) and again
    /// from module unload on: no device may be added then.
    index: Option<Index>,
    major: u32,
    part_shift: u32,
    queue_shape: QueueShape,
}

/// The devices, by number. Every query the control device and the probe make
/// is a tree lookup or a bitmap scan: loop.c's idr equivalent, where a
/// vector searched linearly cost quadratic time to add thousands of devices.
struct Index {
    devices: RBTree<u32, Arc<LoopDevice>>,
    /// The numbers of `devices` and of devices being created or removed
    /// outside the lock (see [`add`], [`remove`]): its first gap is the
    /// lowest free number.
    taken: NumberSet,
    /// The numbers of unbound devices, GET_FREE's candidates.
    unbound: Arc<UnboundNumbers>,
}

impl Index {
    /// The lowest-numbered device GET_FREE may hand out. Devices held for an
    /// earlier taker are skipped; they are few (a hold lasts 2 s).
    fn first_free(&self) -> Option<&Arc<LoopDevice>> {
        let unbound = self.unbound.lock();
        let mut candidate = unbound.next(0);
        while let Some(number) = candidate {
            // A number being created is in no tree yet.
            match self.devices.get(&number) {
                Some(device) if device.is_free() => return Some(device),
                _ => candidate = number.checked_add(1).and_then(|n| unbound.next(n)),
            }
        }
        None
    }
}

impl Registry {
    pub(crate) const fn new() -> Self {
        Self {
            index: None,
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

    /// Picks the number of a new device (a negative `requested` takes the
    /// lowest free one) and marks it as taken, making room for it in the
    /// unbound set so that the device never has to allocate there. Returns
    /// the number and that set, for the device.
    fn reserve(&mut self, requested: i32) -> Result<(u32, Arc<UnboundNumbers>)> {
        let max_number = self.max_number();
        // Not yet (no major) or no longer (module unload).
        let index = self.index.as_mut().ok_or(ENODEV)?;
        let number = match u32::try_from(requested) {
            Ok(n) if n > max_number => return Err(EINVAL),
            Ok(n) if index.taken.contains(n) => return Err(EEXIST),
            Ok(n) => n,
            Err(_) => Some(index.taken.first_gap())
                .filter(|&n| n <= max_number)
                .ok_or(ENOSPC)?,
        };
        index.unbound.lock().reserve(number)?;
        index.taken.insert(number)?;
        Ok((number, index.unbound.clone()))
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
    let (name_prefix, number, major, part_shift, queue_shape, unbound) = {
        let mut registry = REGISTRY.lock();
        let (number, unbound) = registry.reserve(requested)?;
        (
            registry.name_prefix,
            number,
            registry.major,
            registry.part_shift,
            registry.queue_shape,
            unbound,
        )
    };
    let created = RBTreeNodeReservation::new(GFP_KERNEL).and_then(|node| {
        LoopDevice::create(name_prefix, number, major, part_shift, queue_shape, unbound)
            .map(|device| (node, device))
    });
    let mut registry = REGISTRY.lock();
    let Some(index) = registry.index.as_mut() else {
        // Module unload began meanwhile and removes only recorded devices.
        drop(registry);
        if let Ok((_, device)) = created {
            device.remove(false);
        }
        return Err(ENODEV);
    };
    let (node, device) = match created {
        Ok(created) => created,
        Err(e) => {
            index.taken.remove(number);
            return Err(e);
        }
    };
    if hand_out == HandOut::Yes {
        device.hand_out();
    }
    index.devices.insert(node.into_node(number, device.clone()));
    // Bound already if it was opened and bound before it was recorded.
    index.unbound.update(number, || device.is_unbound());
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
/// fail before devices exist, and sets up the (empty) index: devices can be
/// created from then on.
pub(crate) fn set_major(major: u32) -> Result {
    let index = Index {
        devices: RBTree::new(),
        taken: NumberSet::new(),
        unbound: UnboundNumbers::new()?,
    };
    let mut registry = REGISTRY.lock();
    registry.major = major;
    registry.index = Some(index);
    Ok(())
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
    // Taking the index closes the registry: no device may be added any more
    // (the probe hook stays registered until the major goes, after us). The
    // registry is a static that is never dropped, so what the index holds
    // must leave it here or every load would leak it.
    let Some(index) = REGISTRY.lock().index.take() else {
        return;
    };
    for device in index.devices.values() {
        device.remove(true);
    }
}

fn remove(arg: usize) -> Result<i32> {
    // The argument is an int in loop.c; "remove any" is not supported.
    let number = u32::try_from(arg as i32).map_err(|_| EINVAL)?;
    let device = {
        let mut registry = REGISTRY.lock();
        let index = registry.index.as_mut().ok_or(ENODEV)?;
        index.devices.get(&number).ok_or(ENODEV)?.begin_removal()?;
        let device = index.devices.remove(&number).ok_or(ENODEV)?;
        index.unbound.lock().remove(number);
        device
    };
    device.remove(false);
    // As in loop.c, the number stays taken until the disk is gone: a probe
    // (udev opening the node while the disk goes) or an ADD of it meanwhile
    // gets EEXIST instead of a second `rloopN` clashing with the first in
    // sysfs. Unload may have taken the index meanwhile.
    if let Some(index) = REGISTRY.lock().index.as_mut() {
        index.taken.remove(number);
    }
    Ok(0)
}

fn get_free() -> Result<i32> {
    let registry = REGISTRY.lock();
    if let Some(device) = registry.index.as_ref().and_then(Index::first_free) {
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
