// SPDX-License-Identifier: GPL-2.0

//! A misc character device (`struct miscdevice`) whose fops pin the module
//! while it is open (the `kernel` crate's `MiscDeviceRegistration` leaves
//! `owner` unset): the driver's control device (`/dev/rloop-control`, or
//! `/dev/loop-control` on loop.c's fixed minor in drop-in mode).
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)

use crate::glue::SyncTable;
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::{
        from_result,
        to_result, //
    },
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong, //
    },
    prelude::*,
    types::Opaque, //
};

/// The driver logic behind a misc device.
pub(crate) trait MiscOps: 'static {
    /// An ioctl on the device (native or compat: the arguments are plain
    /// numbers). Returns the ioctl's result.
    fn ioctl(cmd: u32, arg: usize) -> Result<i32>;
}

/// A registered misc device served by `T`.
///
/// # Invariants
///
/// `misc` is registered (`misc_register`) until drop.
#[pin_data(PinnedDrop)]
pub(crate) struct MiscDevice<T: MiscOps> {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
    _ops: PhantomData<T>,
}

// SAFETY: The misc device is only touched at registration and deregistration.
unsafe impl<T: MiscOps> Send for MiscDevice<T> {}
// SAFETY: See above.
unsafe impl<T: MiscOps> Sync for MiscDevice<T> {}

impl<T: MiscOps> MiscDevice<T> {
    const FOPS: SyncTable<bindings::file_operations> = SyncTable(bindings::file_operations {
        // `__this_module` is constructed by the kernel at load time and
        // outlives the registration.
        owner: (&raw const bindings::__this_module).cast_mut(),
        unlocked_ioctl: Some(Self::ioctl_callback),
        compat_ioctl: Some(Self::ioctl_callback),
        // The remaining callbacks are optional and unused.
        ..pin_init::zeroed()
    });

    /// Registers the device `/dev/<name>` (mode 0660) on `minor` (`None`: a
    /// dynamic one). A taken minor fails with `EBUSY`.
    pub(crate) fn register(name: &'static CStr, minor: Option<u32>) -> impl PinInit<Self, Error> {
        let minor = match minor {
            Some(minor) => minor as c_int,
            None => bindings::MISC_DYNAMIC_MINOR as c_int,
        };
        try_pin_init!(Self {
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut misc: bindings::miscdevice = pin_init::zeroed();
                misc.minor = minor;
                misc.name = name.as_char_ptr();
                misc.fops = &Self::FOPS.0;
                misc.mode = 0o660;
                // SAFETY: `slot` is pinned, writable memory for the misc
                // device.
                unsafe { slot.write(misc) };
                // SAFETY: `misc_register` needs a filled-in misc device that
                // stays put until `misc_deregister`: `slot` is pinned, and its
                // name and fops are statics.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
            _ops: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Only called by the misc core, for an open file of the device.
    unsafe extern "C" fn ioctl_callback(
        _file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        from_result(|| T::ioctl(cmd, arg).map(|v| v as c_long))
    }
}

#[pinned_drop]
impl<T: MiscOps> PinnedDrop for MiscDevice<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered in `register` (a failed registration never
        // constructs `Self`; type invariant).
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}
