// SPDX-License-Identifier: GPL-2.0

//! The user-space ABI of the loop driver, copied from `include/uapi/linux/loop.h`.
//!
//! bindgen does not see `linux/loop.h`, so the numbers and structures are written
//! out here; the compile-time size checks catch a layout that drifts from C.

use kernel::{
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// Block-device ioctls (`loop.h`: plain numbers, not `_IO*`-encoded).
pub(crate) const LOOP_SET_FD: u32 = 0x4C00;
pub(crate) const LOOP_CLR_FD: u32 = 0x4C01;
pub(crate) const LOOP_SET_STATUS: u32 = 0x4C02;
pub(crate) const LOOP_GET_STATUS: u32 = 0x4C03;
pub(crate) const LOOP_SET_STATUS64: u32 = 0x4C04;
pub(crate) const LOOP_GET_STATUS64: u32 = 0x4C05;
pub(crate) const LOOP_CHANGE_FD: u32 = 0x4C06;
pub(crate) const LOOP_SET_CAPACITY: u32 = 0x4C07;
pub(crate) const LOOP_SET_DIRECT_IO: u32 = 0x4C08;
pub(crate) const LOOP_SET_BLOCK_SIZE: u32 = 0x4C09;
pub(crate) const LOOP_CONFIGURE: u32 = 0x4C0A;

/// Control-device ioctls.
pub(crate) const LOOP_CTL_ADD: u32 = 0x4C80;
pub(crate) const LOOP_CTL_REMOVE: u32 = 0x4C81;
pub(crate) const LOOP_CTL_GET_FREE: u32 = 0x4C82;

/// `lo_flags` bits.
pub(crate) const LO_FLAGS_READ_ONLY: u32 = 1;
pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub(crate) const LO_FLAGS_PARTSCAN: u32 = 8;
pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

/// Flags LOOP_SET_STATUS may set, and the subset it may clear.
pub(crate) const LOOP_SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
pub(crate) const LOOP_SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
/// Flags LOOP_CONFIGURE accepts.
pub(crate) const LOOP_CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;

pub(crate) const LO_NAME_SIZE: usize = 64;
pub(crate) const LO_KEY_SIZE: usize = 32;
/// The only encryption type left in the kernel.
pub(crate) const LO_CRYPT_NONE: u32 = 0;

/// Declares a `repr(C)` uAPI structure and fails the build unless its fields
/// follow each other with no gap and fill it: with no implicit padding, no
/// uninitialised byte is ever copied to user space.
macro_rules! uapi_struct {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)+
        }

        const _: () = {
            let mut end = 0;
            $(
                assert!(core::mem::offset_of!($name, $field) == end);
                end += core::mem::size_of::<$ty>();
            )+
            assert!(end == core::mem::size_of::<$name>());
        };
    };
}

uapi_struct! {
    /// `struct loop_info64`: identical on 32- and 64-bit user space.
    struct LoopInfo64 {
        lo_device: u64,
        lo_inode: u64,
        lo_rdevice: u64,
        lo_offset: u64,
        lo_sizelimit: u64,
        lo_number: u32,
        lo_encrypt_type: u32,
        lo_encrypt_key_size: u32,
        lo_flags: u32,
        lo_file_name: [u8; LO_NAME_SIZE],
        lo_crypt_name: [u8; LO_NAME_SIZE],
        lo_encrypt_key: [u8; LO_KEY_SIZE],
        lo_init: [u64; 2],
    }
}

uapi_struct! {
    /// `struct loop_config`, the argument of LOOP_CONFIGURE.
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }
}

uapi_struct! {
    /// The legacy `struct loop_info` of 64-bit user space (x86_64 layout:
    /// `__kernel_old_dev_t` and `unsigned long` are 64 bits, `int` 32). C has
    /// 4 implicit padding bytes after `lo_number` and 4 at the end: here they
    /// are the explicit `padding1` and `padding2`.
    struct LoopInfo {
        lo_number: i32,
        padding1: u32,
        lo_device: u64,
        lo_inode: u64,
        lo_rdevice: u64,
        lo_offset: i32,
        lo_encrypt_type: i32,
        lo_encrypt_key_size: i32,
        lo_flags: i32,
        lo_name: [u8; LO_NAME_SIZE],
        lo_encrypt_key: [u8; LO_KEY_SIZE],
        lo_init: [u64; 2],
        reserved: [u8; 4],
        padding2: [u8; 4],
    }
}

uapi_struct! {
    /// `struct compat_loop_info` (loop.c): the legacy structure of 32-bit x86
    /// user space, where `compat_dev_t` is 16 bits and `long` is 32.
    struct CompatLoopInfo {
        lo_number: i32,
        lo_device: u16,
        padding1: u16,
        lo_inode: u32,
        lo_rdevice: u16,
        padding2: u16,
        lo_offset: i32,
        lo_encrypt_type: i32,
        lo_encrypt_key_size: i32,
        lo_flags: i32,
        lo_name: [u8; LO_NAME_SIZE],
        lo_encrypt_key: [u8; LO_KEY_SIZE],
        lo_init: [u32; 2],
        reserved: [u8; 4],
    }
}

// The C structures' sizes on x86_64.
const _: () = assert!(core::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(core::mem::size_of::<LoopConfig>() == 304);
const _: () = assert!(core::mem::size_of::<LoopInfo>() == 168);
const _: () = assert!(core::mem::size_of::<CompatLoopInfo>() == 140);

// The byte views that `UserSlice` reads and writes need: `FromBytes` and
// `AsBytes` are `unsafe` traits (the compiler cannot check their promise), so
// these impls are the only `unsafe` outside `glue` (allowed on them alone).
//
// SAFETY: Plain-old-data `repr(C)` structures made of integers and byte arrays
// with no implicit padding (`uapi_struct!` checks it), so every
// bit pattern is valid and every byte is initialised.
#[allow(unsafe_code)]
unsafe impl FromBytes for LoopInfo64 {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl AsBytes for LoopInfo64 {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl FromBytes for LoopConfig {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl FromBytes for LoopInfo {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl AsBytes for LoopInfo {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl FromBytes for CompatLoopInfo {}
// SAFETY: See above.
#[allow(unsafe_code)]
unsafe impl AsBytes for CompatLoopInfo {}

impl LoopInfo64 {
    /// An all-zero structure, the starting point of every GET_STATUS reply.
    pub(crate) const fn zeroed() -> Self {
        Self {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }

    /// The legacy structure of 64-bit user space (LOOP_SET_STATUS), widened.
    /// It has no size limit and no encryption fields worth keeping: loop.c
    /// leaves them zero.
    pub(crate) fn from_legacy(old: &LoopInfo) -> Self {
        let mut info = Self::zeroed();
        info.lo_number = old.lo_number as u32;
        info.lo_device = old.lo_device;
        info.lo_inode = old.lo_inode;
        info.lo_rdevice = old.lo_rdevice;
        info.lo_offset = i64::from(old.lo_offset) as u64;
        info.lo_flags = old.lo_flags as u32;
        info.lo_file_name = old.lo_name;
        info
    }

    /// The legacy structure of 32-bit user space, widened (see
    /// [`Self::from_legacy`]).
    pub(crate) fn from_compat(old: &CompatLoopInfo) -> Self {
        let mut info = Self::zeroed();
        info.lo_number = old.lo_number as u32;
        info.lo_device = u64::from(old.lo_device);
        info.lo_inode = u64::from(old.lo_inode);
        info.lo_rdevice = u64::from(old.lo_rdevice);
        info.lo_offset = i64::from(old.lo_offset) as u64;
        info.lo_flags = old.lo_flags as u32;
        info.lo_file_name = old.lo_name;
        info
    }
}

impl LoopInfo {
    /// The legacy structure of 64-bit user space (LOOP_GET_STATUS):
    /// EOVERFLOW if the offset does not fit.
    pub(crate) fn from_info64(info: &LoopInfo64) -> Result<Self> {
        Ok(Self {
            lo_number: info.lo_number as i32,
            padding1: 0,
            lo_device: info.lo_device,
            lo_inode: info.lo_inode,
            lo_rdevice: info.lo_rdevice,
            lo_offset: i32::try_from(info.lo_offset).map_err(|_| EOVERFLOW)?,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: info.lo_flags as i32,
            lo_name: info.lo_file_name,
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
            padding2: [0; 4],
        })
    }
}

impl CompatLoopInfo {
    /// The legacy structure of 32-bit user space: EOVERFLOW if the offset or a
    /// device or inode number does not fit.
    pub(crate) fn from_info64(info: &LoopInfo64) -> Result<Self> {
        let offset = i32::try_from(info.lo_offset).map_err(|_| EOVERFLOW)?;
        let narrow = |v: u64| u16::try_from(v).map_err(|_| EOVERFLOW);
        Ok(Self {
            lo_number: info.lo_number as i32,
            lo_device: narrow(info.lo_device)?,
            padding1: 0,
            lo_inode: u32::try_from(info.lo_inode).map_err(|_| EOVERFLOW)?,
            lo_rdevice: narrow(info.lo_rdevice)?,
            padding2: 0,
            lo_offset: offset,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: info.lo_flags as i32,
            lo_name: info.lo_file_name,
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
            reserved: [0; 4],
        })
    }
}
