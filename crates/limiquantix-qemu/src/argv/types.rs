//! The value types around the command line: host facts, the resolved firmware, and why a
//! command line cannot be built.

use std::path::PathBuf;

use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::{Firmware, ModelError};

/// Host facts the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The accelerator in use (already resolved, see [`limiquantix_vm::accel::Accel::resolve`]).
    pub accel: AccelKind,
    /// hugetlbfs mount used when a VM asks for huge pages.
    pub hugepages_dir: PathBuf,
    /// Spare `pcie-root-port`s a q35 VM gets for hot-plugged disks and NICs (`hp0`, ...).
    pub hotplug_ports: u8,
}

impl HostConfig {
    /// Defaults: the given accelerator, huge pages from `/dev/hugepages`, 4 hot-plug ports.
    pub fn new(accel: AccelKind) -> Self {
        Self {
            accel,
            hugepages_dir: PathBuf::from("/dev/hugepages"),
            hotplug_ports: 4,
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
