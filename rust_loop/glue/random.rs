// SPDX-License-Identifier: GPL-2.0

//! Random numbers from the kernel's entropy pool (`get_random_u32`).
//!
//! C header: [`include/linux/random.h`](srctree/include/linux/random.h)

use kernel::bindings;

/// Raw 32-bit random number, for probabilistic fault injection.
pub(crate) fn random_u32() -> u32 {
    // SAFETY: `get_random_u32` has no preconditions and may be called from
    // any context.
    unsafe { bindings::get_random_u32() }
}
