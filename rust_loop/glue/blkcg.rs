// SPDX-License-Identifier: GPL-2.0

//! Charging a worker's block I/O to the cgroup of the request it serves: a
//! kernel thread's blkcg association (`kthread_associate_blkcg`), as loop.c's
//! workers do.
//!
//! C header: [`include/linux/kthread.h`](srctree/include/linux/kthread.h)

use super::mq::Request;
use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::c_void, //
};

/// While alive, the bios the current worker allocates are charged to the
/// blkcg of a request's first bio (loop.c's `loop_handle_cmd`): the issuer's
/// `io.max` and `io.weight` apply to the backing I/O done for it.
///
/// # Invariants
///
/// Created and dropped by the same task (it is neither `Send` nor `Sync`).
pub(crate) struct BlkcgAssociation {
    _not_send: PhantomData<*mut ()>,
}

#[cfg(CONFIG_BLK_CGROUP)]
unsafe extern "C" {
    /// `block/blk-cgroup.c` (exported): the blkcg css (a `struct
    /// cgroup_subsys_state *`) a bio (a `struct bio *`) is charged to, or
    /// NULL. `linux/blk-cgroup.h` is not among the kernel crate's binding
    /// headers. Opaque pointers: the bindgen structures hold zero-sized
    /// arrays, which `improper_ctypes` rejects in a declaration.
    fn bio_blkcg_css(bio: *mut c_void) -> *mut c_void;
}

impl BlkcgAssociation {
    /// Associates the current kernel thread with `rq`'s blkcg.
    pub(crate) fn of_request(rq: &Request) -> Self {
        #[cfg(CONFIG_BLK_CGROUP)]
        {
            let bio = rq.first_bio();
            if !bio.is_null() {
                // SAFETY: `bio` is a bio of an in-flight request; the
                // function only reads its blkg association.
                let css = unsafe { bio_blkcg_css(bio.cast()) };
                // SAFETY: `kthread_associate_blkcg` may be called by any task
                // (it does nothing outside a kernel thread) with NULL or a
                // live css: the bio's blkg pins its blkcg while the request
                // is in flight, and the thread takes its own reference.
                unsafe { bindings::kthread_associate_blkcg(css.cast()) };
            }
        }
        #[cfg(not(CONFIG_BLK_CGROUP))]
        let _ = rq;
        // INVARIANT: Not `Send`: dropped by the task that created it.
        Self {
            _not_send: PhantomData,
        }
    }
}

impl Drop for BlkcgAssociation {
    fn drop(&mut self) {
        #[cfg(CONFIG_BLK_CGROUP)]
        // SAFETY: NULL ends the current thread's association (and drops the
        // reference it took), whatever it was.
        unsafe {
            bindings::kthread_associate_blkcg(core::ptr::null_mut())
        };
    }
}
