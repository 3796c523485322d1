// SPDX-License-Identifier: GPL-2.0

//! Sets of device numbers, as bitmaps that grow on demand.
//!
//! The registry keeps two: the numbers in use (its devices and those being
//! created), whose first gap is the lowest free number for
//! LOOP_CTL_ADD(-1), and the numbers of unbound devices, whose members in
//! ascending order are LOOP_CTL_GET_FREE's candidates. The registry's tree
//! finds a device by number but has no "first gap" or "first unbound"
//! query; a word-scanning bitmap answers both in a few dozen word reads for
//! thousands of devices (4,096 numbers are 64 words).

use kernel::{
    bindings::MINORBITS,
    bitmap::BitmapVec,
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex,
        MutexGuard, //
    },
};

/// The most numbers a set may need: every minor as a device number.
const MAX_NUMBERS: usize = 1 << MINORBITS;

/// A set of device numbers. An empty set allocates nothing.
pub(crate) struct NumberSet {
    /// `None` until the first insertion: the registry's `static` needs a
    /// `const` constructor, which cannot allocate.
    bits: Option<BitmapVec>,
}

impl NumberSet {
    pub(crate) const fn new() -> Self {
        Self { bits: None }
    }

    /// Whether `number` is a member.
    pub(crate) fn contains(&self, number: u32) -> bool {
        self.next(number) == Some(number)
    }

    /// The lowest member that is `from` or above.
    pub(crate) fn next(&self, from: u32) -> Option<u32> {
        let bits = self.bits.as_ref()?;
        let from = from as usize;
        if from >= bits.len() {
            return None;
        }
        // The bitmap holds at most `MAX_NUMBERS` bits: every index fits.
        bits.next_bit(from).map(|n| n as u32)
    }

    /// The lowest number that is not a member.
    pub(crate) fn first_gap(&self) -> u32 {
        match &self.bits {
            None => 0,
            Some(bits) => bits.next_zero_bit(0).unwrap_or(bits.len()) as u32,
        }
    }

    /// Makes room for `number`, so that adding it later cannot fail. May
    /// sleep (allocates with `GFP_KERNEL`).
    pub(crate) fn reserve(&mut self, number: u32) -> Result {
        self.grow_to(number).map(|_| ())
    }

    /// Adds `number`, growing the set if needed.
    pub(crate) fn insert(&mut self, number: u32) -> Result {
        self.grow_to(number)?.set_bit(number as usize);
        Ok(())
    }

    /// Adds or removes `number` without allocating: a number beyond the
    /// room made by [`Self::reserve`] is left out.
    pub(crate) fn assign(&mut self, number: u32, member: bool) {
        match &mut self.bits {
            Some(bits) if (number as usize) < bits.len() => {
                if member {
                    bits.set_bit(number as usize);
                } else {
                    bits.clear_bit(number as usize);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn remove(&mut self, number: u32) {
        self.assign(number, false);
    }

    /// The bitmap, grown to hold `number`. It doubles (up to the minor
    /// space) so that adding devices one by one reallocates it only
    /// log(n) times.
    fn grow_to(&mut self, number: u32) -> Result<&mut BitmapVec> {
        let needed = number as usize + 1;
        let len = self.bits.as_ref().map_or(0, |bits| bits.len());
        if needed > len {
            let size = needed
                .max((2 * len).min(MAX_NUMBERS))
                .next_multiple_of(usize::BITS as usize);
            let mut grown = BitmapVec::new(size, GFP_KERNEL)?;
            if let Some(old) = &self.bits {
                grown.copy_and_extend(old);
            }
            self.bits = Some(grown);
        }
        // Never `None` here: the set holds at least `needed` (>= 1) bits.
        self.bits.as_mut().ok_or(ENOMEM)
    }
}

/// The numbers of the unbound devices, shared by the registry and every
/// device. Devices keep it current as they bind and unbind; the registry
/// adds a device when it records it and takes it out when it removes it.
///
/// It has its own lock because devices change state under their `control`
/// lock or the block core's `open_mutex`, and LOOP_CTL_REMOVE takes
/// `open_mutex` under the registry lock: taking the registry lock there
/// would invert that order. Nothing is locked under this one.
#[pin_data]
pub(crate) struct UnboundNumbers {
    #[pin]
    set: Mutex<NumberSet>,
}

impl UnboundNumbers {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                set <- new_mutex!(NumberSet::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// Records whether device `number` is unbound. `is_unbound` reads the
    /// device's state under the lock: when two state changes race, the
    /// update that runs last reads the later state, so the set ends up
    /// agreeing with the device whatever order the updates run in.
    pub(crate) fn update(&self, number: u32, is_unbound: impl FnOnce() -> bool) {
        let mut set = self.set.lock();
        let unbound = is_unbound();
        set.assign(number, unbound);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, NumberSet> {
        self.set.lock()
    }
}
