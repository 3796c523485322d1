// SPDX-License-Identifier: GPL-2.0

//! `/sys/block/rloopN/loop/`: the files loop.c has (`backing_file`, `offset`,
//! `sizelimit`, `autoclear`, `partscan`, `dio`) and `fault_inject`.

use super::LoopDevice;
use crate::{
    glue::{
        sysfs::{
            AttributeGroup,
            AttributeList,
            DeviceAttribute, //
        },
        SysfsOps,
    },
    uapi::{
        LO_FLAGS_AUTOCLEAR,
        LO_FLAGS_DIRECT_IO,
        LO_FLAGS_PARTSCAN, //
    },
};
use core::fmt::Write as _;
use kernel::{
    prelude::*,
    str::Formatter, //
};

/// The files of the `loop/` group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopAttr {
    BackingFile,
    Offset,
    Sizelimit,
    Autoclear,
    Partscan,
    Dio,
    FaultInject,
}

/// The files of the `loop/` group: name, mode, attribute.
static LOOP_ATTRS: [DeviceAttribute<LoopDevice>; 7] = [
    DeviceAttribute::new(c"backing_file", 0o444, LoopAttr::BackingFile),
    DeviceAttribute::new(c"offset", 0o444, LoopAttr::Offset),
    DeviceAttribute::new(c"sizelimit", 0o444, LoopAttr::Sizelimit),
    DeviceAttribute::new(c"autoclear", 0o444, LoopAttr::Autoclear),
    DeviceAttribute::new(c"partscan", 0o444, LoopAttr::Partscan),
    DeviceAttribute::new(c"dio", 0o444, LoopAttr::Dio),
    DeviceAttribute::new(c"fault_inject", 0o644, LoopAttr::FaultInject),
];

/// The NULL-terminated list of [`LOOP_ATTRS`].
static LOOP_ATTR_LIST: AttributeList<8> = AttributeList::new(&LOOP_ATTRS);

/// `/sys/block/rloopN/loop/`, present while the device is bound.
pub(super) static LOOP_ATTR_GROUP: AttributeGroup<LoopDevice> =
    AttributeGroup::new(c"loop", &LOOP_ATTR_LIST);

impl SysfsOps for LoopDevice {
    type Attr = LoopAttr;

    fn show(&self, attr: LoopAttr, out: &mut Formatter<'_>) -> Result {
        if attr == LoopAttr::FaultInject {
            return self.fault.show(out);
        }
        let flags = self.flags();
        let Some(binding) = self.binding.lock().clone() else {
            return Err(ENXIO);
        };
        let flag = |bit: u32| u8::from(flags & bit != 0);
        match attr {
            LoopAttr::BackingFile => {
                let mut path = KVec::from_elem(0u8, kernel::page::PAGE_SIZE - 1, GFP_KERNEL)?;
                let len = binding.file.write_path(&mut path)?;
                write_lossy(out, &path[..len]).and_then(|()| writeln!(out))
            }
            LoopAttr::Offset => writeln!(out, "{}", binding.offset),
            LoopAttr::Sizelimit => writeln!(out, "{}", binding.sizelimit),
            LoopAttr::Autoclear => writeln!(out, "{}", flag(LO_FLAGS_AUTOCLEAR)),
            LoopAttr::Partscan => writeln!(out, "{}", flag(LO_FLAGS_PARTSCAN)),
            LoopAttr::Dio => writeln!(out, "{}", flag(LO_FLAGS_DIRECT_IO)),
            LoopAttr::FaultInject => Ok(()),
        }
        .map_err(|_| EINVAL)
    }

    fn store(&self, attr: LoopAttr, input: &[u8]) -> Result {
        match attr {
            LoopAttr::FaultInject => self.fault.configure(input),
            _ => Err(EPERM),
        }
    }
}

/// Writes bytes as text, with `?` for anything that is not valid UTF-8.
fn write_lossy(out: &mut Formatter<'_>, bytes: &[u8]) -> core::fmt::Result {
    for chunk in bytes.utf8_chunks() {
        out.write_str(chunk.valid())?;
        if !chunk.invalid().is_empty() {
            out.write_char('?')?;
        }
    }
    Ok(())
}
