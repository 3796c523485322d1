// SPDX-License-Identifier: GPL-2.0

//! Boolean module parameters, parsed by the kernel's own `param_ops_bool`.
//!
//! The 7.2 `module!` macro has integer parameters only. A `u8` stand-in would
//! refuse `y`, `Y`, `on` and a bare `name` (no value), which every C module's
//! `bool` parameter accepts, and `modinfo` would call it a number. So the
//! parameter is declared here the way `module_param(name, bool, 0)` declares
//! it in C: a `kernel_param` in the `__param` section whose ops are
//! `param_ops_bool` (`kstrtobool`: anything else fails the load with EINVAL),
//! plus the `parmtype`/`parm` strings `modinfo` shows.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)

use core::cell::UnsafeCell;
use kernel::ffi::c_void;

/// The value of a boolean module parameter, declared with
/// [`bool_module_param!`].
///
/// # Invariants
///
/// The value is written only by the module loader (`param_set_bool`), before
/// the module's init runs: the parameter has mode 0, so it is not writable in
/// sysfs.
pub(crate) struct BoolParam(UnsafeCell<bool>);

// SAFETY: After load, the value is only read (type invariant).
unsafe impl Sync for BoolParam {}

impl BoolParam {
    /// A parameter with value `default` unless given at load.
    pub(crate) const fn new(default: bool) -> Self {
        Self(UnsafeCell::new(default))
    }

    /// The `arg` of the `kernel_param`: where `param_set_bool` stores the
    /// value.
    pub(crate) const fn as_arg(&self) -> *mut c_void {
        self.0.get().cast()
    }

    /// The value given at load (or the default).
    pub(crate) fn get(&self) -> bool {
        // SAFETY: Written only before module init (type invariant), which
        // happens before any caller can run; never written afterwards.
        unsafe { *self.0.get() }
    }
}

/// Copies a string into a byte array of its exact length, for the `.modinfo`
/// statics (the section wants the bytes themselves, not a reference).
pub(crate) const fn modinfo_bytes<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Declares a boolean module parameter `$name` (default off) with the
/// description `$description`: a [`BoolParam`] static named `$name`, its
/// `kernel_param` and its `modinfo` lines. Loadable modules only (the names
/// carry no `module.` prefix).
macro_rules! bool_module_param {
    ($name:ident, $description:literal) => {
        #[allow(non_upper_case_globals)]
        pub(crate) static $name: $crate::glue::param::BoolParam =
            $crate::glue::param::BoolParam::new(false);

        // `link_section` counts as unsafe code (the linker, not the compiler,
        // gives these statics their meaning), and the expansion lands in the
        // caller's module: allowed here, in the glue's own text, as the
        // `module!` macro does for its parameters. The sections' layout is
        // the C `module_param` one: `__param` holds `struct kernel_param`,
        // `.modinfo` NUL-terminated `key=value` strings.
        #[allow(unsafe_code)]
        const _: () = {
            const PARMTYPE: &str = concat!("parmtype=", stringify!($name), ":bool\0");
            const PARM: &str = concat!("parm=", stringify!($name), ":", $description, "\0");

            #[link_section = ".modinfo"]
            #[used(compiler)]
            static MODINFO_PARMTYPE: [u8; PARMTYPE.len()] =
                $crate::glue::param::modinfo_bytes(PARMTYPE);

            #[link_section = ".modinfo"]
            #[used(compiler)]
            static MODINFO_PARM: [u8; PARM.len()] = $crate::glue::param::modinfo_bytes(PARM);

            #[link_section = "__param"]
            #[used(compiler)]
            static KERNEL_PARAM: ::kernel::module_param::KernelParam =
                ::kernel::module_param::KernelParam::new(::kernel::bindings::kernel_param {
                    name: ::kernel::str::as_char_ptr_in_const_context(::kernel::c_str!(
                        stringify!($name)
                    )),
                    // The module object outlives its parameters.
                    mod_: (&raw const ::kernel::bindings::__this_module).cast_mut(),
                    ops: &raw const ::kernel::bindings::param_ops_bool,
                    // Not in sysfs: the value never changes after load.
                    perm: 0,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: ::kernel::bindings::kernel_param__bindgen_ty_1 {
                        arg: $name.as_arg(),
                    },
                });
        };
    };
}
pub(crate) use bool_module_param;
