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
//!
//! Layout (children import each other one way, never from this file): `types` (host facts,
//! resolved firmware, [`BootError`]), `common` (the argument accumulator, path checks),
//! `command` ([`QemuCommand`], which calls the option groups `machine`, `drives`, `netdev`,
//! `control`), and their helpers `blockdev`, `device`, `chardev`, [`boot`].
//!
//! [`VmDefinition`]: limiquantix_vm::model::VmDefinition

mod blockdev;
pub mod boot;
mod chardev;
mod command;
mod common;
mod control;
mod device;
mod drives;
mod hotplug;
mod machine;
mod netdev;
mod ports;
mod types;

pub(crate) use blockdev::top_node;
pub use boot::{BootDevice, BootEntry, boot_order};
pub use command::QemuCommand;
pub use hotplug::{DiskPlug, SCSI_CONTROLLER, disk_plug, nic_plug, scsi_controller};
pub use ports::HOTPLUG_PORT_PREFIX;
pub use types::{BootError, HostConfig, ResolvedFirmware};

#[cfg(test)]
mod tests;
