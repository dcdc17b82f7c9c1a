//! [`QemuCommand`]: the whole command line, built option group by option group.

use std::ffi::OsString;

use super::boot::{BootEntry, boot_order};
use super::common::Argv;
use super::types::{BootError, HostConfig, ResolvedFirmware};
use super::{control, drives, machine, netdev, ports};
use crate::paths::RuntimePaths;
use limiquantix_vm::model::{Firmware, VmDefinition};

/// A built QEMU command line (program not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    args: Vec<OsString>,
    boot_order: Vec<BootEntry>,
}

impl QemuCommand {
    /// Builds the arguments for `def`. Validates the definition, computes the boot order, and
    /// refuses a VM with nothing bootable.
    pub fn build(
        def: &VmDefinition,
        paths: &RuntimePaths,
        host: &HostConfig,
        firmware: &ResolvedFirmware,
    ) -> Result<Self, BootError> {
        def.validate()?;
        let order = boot_order(def)?;
        match (def.firmware, firmware) {
            (Firmware::Bios, ResolvedFirmware::Uefi { .. }) => {
                return Err(BootError::FirmwareMismatch {
                    wanted: def.firmware,
                    resolved: "uefi",
                });
            }
            (Firmware::Uefi, ResolvedFirmware::Bios) => {
                return Err(BootError::FirmwareMismatch {
                    wanted: def.firmware,
                    resolved: "bios",
                });
            }
            _ => {}
        }
        let mut a = Argv::default();
        machine::machine(&mut a, def, host, firmware)?;
        ports::root_ports(&mut a, def, host);
        drives::drives(&mut a, def, paths, &order)?;
        netdev::network(&mut a, def, &order);
        control::control(&mut a, def, paths)?;
        Ok(Self {
            args: a.0,
            boot_order: order,
        })
    }

    /// The arguments (without the program name).
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// The arguments, owned.
    pub fn into_args(self) -> Vec<OsString> {
        self.args
    }

    /// The boot order the command line encodes, first device first.
    pub fn boot_order(&self) -> &[BootEntry] {
        &self.boot_order
    }
}
