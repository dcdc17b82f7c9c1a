//! The typed QEMU command line.
//!
//! [`QemuCommand::build`] turns a validated [`VmDefinition`] into `qemu-system-x86_64` arguments.
//! Everything that names a host path or a user-chosen string goes through JSON (`-blockdev`,
//! `-device`, `-netdev`, `-object`), so a comma, quote or `=` in it stays data. The few options
//! QEMU 7.2 parses only as `key=value` lists (`-chardev`, `-name`) get the backend's own paths,
//! escaped by doubling commas (see `chardev.rs`). `-pidfile` takes its path as a whole argument.
//!
//! Boot safety ([`boot`]): the boot disk gets `bootindex=1`, `-boot strict=on` keeps the firmware
//! to the listed devices, the seed CD-ROM is on AHCI and never in boot order, NICs carry no option
//! ROM unless network boot is on, and a VM with nothing bootable is refused.

mod blockdev;
pub mod boot;
mod chardev;
mod control;
mod device;
mod drives;
mod machine;
mod netdev;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::paths::RuntimePaths;
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::{Firmware, ModelError, VmDefinition};

pub use boot::{BootDevice, BootEntry, boot_order};

/// Host facts the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The accelerator in use (already resolved, see [`limiquantix_vm::accel::Accel::resolve`]).
    pub accel: AccelKind,
    /// hugetlbfs mount used when a VM asks for huge pages.
    pub hugepages_dir: PathBuf,
}

impl HostConfig {
    /// Defaults: the given accelerator, huge pages from `/dev/hugepages`.
    pub fn new(accel: AccelKind) -> Self {
        Self {
            accel,
            hugepages_dir: PathBuf::from("/dev/hugepages"),
        }
    }
}

/// The firmware a launch uses (see `firmware::prepare`, which resolves `auto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedFirmware {
    /// SeaBIOS (QEMU's built-in default).
    Bios,
    /// OVMF: read-only code and the VM's own writable variable store.
    Uefi {
        /// OVMF code image (opened read-only).
        code: PathBuf,
        /// The VM's copy of the variable store.
        vars: PathBuf,
    },
}

/// Why a command line cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The definition (or a runtime path) is not acceptable.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// Nothing in the definition can boot; QEMU would end in "No bootable device".
    #[error(
        "nothing to boot: {reason}. Give the VM a disk with an operating system (a path or an \
         overlay on an image), a bootable CD-ROM with an ISO, or turn on boot.network_boot"
    )]
    NothingBootable {
        /// What is missing, in words.
        reason: String,
    },
    /// The resolved firmware contradicts the definition.
    #[error("firmware: the definition asks for {wanted:?} but the launch resolved {resolved}")]
    FirmwareMismatch {
        /// The definition's firmware.
        wanted: Firmware,
        /// What was passed to the builder.
        resolved: &'static str,
    },
}

/// A built QEMU command line (program not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    args: Vec<OsString>,
    boot_order: Vec<BootEntry>,
}

/// Longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

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

/// A path that goes into JSON must be UTF-8, absolute and normalized.
fn utf8<'a>(field: &str, p: &'a Path) -> Result<&'a str, ModelError> {
    limiquantix_vm::model::check_path(field, p)?;
    Ok(p.to_str().unwrap_or_default())
}

/// A socket path must fit `sun_path`.
fn socket<'a>(field: &str, p: &'a Path) -> Result<&'a std::ffi::OsStr, ModelError> {
    let len = p.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ModelError {
            field: field.to_owned(),
            problem: format!(
                "{} is {len} bytes; Unix socket paths are at most {MAX_SOCKET_PATH} \
                 (use a shorter run directory)",
                p.display()
            ),
        });
    }
    Ok(p.as_os_str())
}

/// Argument accumulator.
#[derive(Default)]
pub(super) struct Argv(Vec<OsString>);

impl Argv {
    fn flag(&mut self, name: &str) {
        self.0.push(name.into());
    }

    fn opt(&mut self, name: &str, value: impl Into<OsString>) {
        self.0.push(name.into());
        self.0.push(value.into());
    }

    fn json(&mut self, name: &str, value: Value) {
        self.opt(name, value.to_string());
    }
}

#[cfg(test)]
mod tests;
