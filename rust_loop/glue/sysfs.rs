// SPDX-License-Identifier: GPL-2.0

//! A sysfs attribute group (`struct attribute_group`) on a disk, whose files
//! are served by the device behind the disk ([`SysfsOps`]).
//!
//! The driver declares the group as statics: an array of
//! [`DeviceAttribute`]s, an [`AttributeList`] over it and an
//! [`AttributeGroup`] naming the list.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h)

use crate::glue::{
    mq::{
        gen_disk,
        Disk,
        DiskOps, //
    },
    SyncTable,
};
use core::{
    marker::PhantomData,
    ptr, //
};
use kernel::{
    bindings,
    error::{
        from_result,
        to_result, //
    },
    ffi::c_char,
    prelude::*,
    str::Formatter, //
};

/// The driver logic behind the files of an attribute group.
pub(crate) trait SysfsOps: DiskOps {
    /// What tells the files apart.
    type Attr: Copy + Send + Sync + 'static;

    /// Writes the contents of file `attr` into `out` (at most a page).
    fn show(&self, attr: Self::Attr, out: &mut Formatter<'_>) -> Result;

    /// Handles a write of `input` to file `attr`.
    fn store(&self, attr: Self::Attr, input: &[u8]) -> Result;
}

/// One file of a group: a `device_attribute` and what tells it apart.
#[repr(C)]
pub(crate) struct DeviceAttribute<T: SysfsOps> {
    raw: bindings::device_attribute,
    attr: T::Attr,
}

// SAFETY: The attribute is never written after initialisation; `T::Attr` is
// `Sync`.
unsafe impl<T: SysfsOps> Sync for DeviceAttribute<T> {}

impl<T: SysfsOps> DeviceAttribute<T> {
    /// The file `name` with permissions `mode`; it takes writes if `mode`
    /// lets the owner write.
    pub(crate) const fn new(name: &'static CStr, mode: u16, attr: T::Attr) -> Self {
        let mut raw: bindings::device_attribute = pin_init::zeroed();
        raw.attr.name = kernel::str::as_char_ptr_in_const_context(name);
        raw.attr.mode = mode;
        raw.__bindgen_anon_1.show = Some(show_callback::<T>);
        if mode & 0o200 != 0 {
            raw.__bindgen_anon_2.store = Some(store_callback::<T>);
        }
        Self { raw, attr }
    }
}

/// The NULL-terminated list of the attributes of a group: `N` is one more
/// than the number of attributes.
pub(crate) struct AttributeList<const N: usize>(SyncTable<[*const bindings::attribute; N]>);

impl<const N: usize> AttributeList<N> {
    /// The list of `attrs` (a compile-time error unless `N == attrs.len() + 1`).
    pub(crate) const fn new<T: SysfsOps>(attrs: &'static [DeviceAttribute<T>]) -> Self {
        assert!(attrs.len() + 1 == N);
        let mut list = [ptr::null(); N];
        let mut i = 0;
        while i < attrs.len() {
            list[i] = &raw const attrs[i].raw.attr;
            i += 1;
        }
        Self(SyncTable(list))
    }
}

/// A named group of files, served by `T`.
pub(crate) struct AttributeGroup<T: SysfsOps> {
    raw: SyncTable<bindings::attribute_group>,
    _ops: PhantomData<T>,
}

impl<T: SysfsOps> AttributeGroup<T> {
    /// The group `name` (a directory of the disk's sysfs directory) of the
    /// files in `list`, which were made by [`DeviceAttribute::new`] for `T`.
    pub(crate) const fn new<const N: usize>(
        name: &'static CStr,
        list: &'static AttributeList<N>,
    ) -> Self {
        let mut raw: bindings::attribute_group = pin_init::zeroed();
        raw.name = kernel::str::as_char_ptr_in_const_context(name);
        raw.__bindgen_anon_2.attrs_const = list.0 .0.as_ptr();
        Self {
            raw: SyncTable(raw),
            _ops: PhantomData,
        }
    }
}

impl<T: SysfsOps> Disk<T> {
    /// Adds `group` to the disk's sysfs directory.
    pub(crate) fn add_sysfs_group(&self, group: &'static AttributeGroup<T>) -> Result {
        // SAFETY: `sysfs_create_group` needs a registered kobject and a group
        // that outlives it: the disk is added, so its device kobject is
        // registered; the group is a static of this module, removed before the
        // module goes away (unbind happens before delete).
        to_result(unsafe { bindings::sysfs_create_group(self.kobj(), &group.raw.0) })
    }

    /// Removes `group` from the disk's sysfs directory.
    pub(crate) fn remove_sysfs_group(&self, group: &'static AttributeGroup<T>) {
        // SAFETY: The disk's kobject is valid; removing a group that is not
        // there is a no-op for `sysfs_remove_group`.
        unsafe { bindings::sysfs_remove_group(self.kobj(), &group.raw.0) };
    }
}

/// Finds the device and the file behind a sysfs callback.
///
/// # Safety
///
/// `dev` is the device of an added disk of type `Disk<T>` (its part0), and
/// `attr` the `raw` field of a `DeviceAttribute<T>`.
unsafe fn target<'a, T: SysfsOps>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
) -> (kernel::sync::ArcBorrow<'a, T>, T::Attr) {
    // SAFETY: `attr` is the first field of a `DeviceAttribute<T>`
    // (`repr(C)`), per the function contract.
    let attr = unsafe { kernel::container_of!(attr, DeviceAttribute<T>, raw) };
    // SAFETY: `attr` points to a live, immutable `DeviceAttribute<T>`.
    let attr = unsafe { (*attr).attr };
    // SAFETY: `dev` is embedded in a `block_device` (`dev_to_disk`).
    let bdev = unsafe { kernel::container_of!(dev, bindings::block_device, bd_device) };
    // SAFETY: The block device is live while its sysfs files are.
    let disk = unsafe { (*bdev).bd_disk };
    // SAFETY: An added disk of `Disk<T>`; its sysfs files are removed before
    // the disk goes away, so `free_disk` cannot run meanwhile.
    (unsafe { gen_disk::borrow_owner::<T>(disk) }, attr)
}

/// # Safety
///
/// Only called by sysfs, for an attribute of an `AttributeGroup<T>` on a disk
/// of this driver.
unsafe extern "C" fn show_callback<T: SysfsOps>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The sysfs core calls us with one of our attributes on a disk's device.
    let (owner, attr) = unsafe { target::<T>(dev, attr) };
    // SAFETY: `buf` is a writable PAGE_SIZE buffer (sysfs contract).
    let page =
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
    let mut out = Formatter::new(page);
    from_result(|| {
        owner.show(attr, &mut out)?;
        Ok(out.bytes_written() as isize)
    })
}

/// # Safety
///
/// Only called by sysfs, for an attribute of an `AttributeGroup<T>` on a disk
/// of this driver.
unsafe extern "C" fn store_callback<T: SysfsOps>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: The sysfs core calls us with one of our attributes on a disk's device.
    let (owner, attr) = unsafe { target::<T>(dev, attr) };
    // SAFETY: `buf` holds `count` readable bytes (sysfs contract).
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    from_result(|| {
        owner.store(attr, input)?;
        Ok(count as isize)
    })
}
