// SPDX-License-Identifier: GPL-2.0

//! Flags of the current task (`PF_*`) and its capabilities.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h)

use kernel::{
    bindings,
    ffi::c_int,
    task::Task, //
};

/// Whether the current task has `CAP_SYS_ADMIN`.
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only inspects the current task's credentials and may
    // be called from any process context.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// Sets task flags on the current task while alive, then clears those that
/// were not set before.
///
/// # Invariants
///
/// The scope is created and dropped by the same task (it is neither `Send`
/// nor `Sync`), which had none of the flags in `added` before.
pub(crate) struct TaskFlagsScope {
    added: u32,
    _not_send: core::marker::PhantomData<*mut ()>,
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
        // INVARIANT: Created by the current task, with `added` clear before.
        Self {
            added,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for TaskFlagsScope {
    fn drop(&mut self) {
        let task = Task::current_raw();
        // SAFETY: As in `enter`: the scope never leaves the task that made it
        // (type invariant).
        unsafe { (*task).flags &= !self.added };
    }
}
