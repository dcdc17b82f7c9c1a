//! The VM definition: what a VM is, independent of whether it runs.
//!
//! A [`VmDefinition`] is what the daemon persists as `vm.json`. It is versioned
//! ([`SCHEMA_VERSION`]), refuses unknown fields, and is checked as a whole by
//! [`VmDefinition::validate`], whose errors name the field (`disks[1].source.size_bytes`).
//! [`VmDefinition::into_valid`] validates once and gives a [`ValidDefinition`], which is what
//! a backend's define takes.

mod definition;
mod device;
mod id;
mod valid;
mod validate;

pub use definition::{
    BootSpec, ConsoleSpec, CpuTopology, DirectKernelBoot, Firmware, GuestOs, MachineType,
    MemorySpec, SCHEMA_VERSION, VmDefinition,
};
pub use device::{
    CdromRole, CdromSpec, DiskBus, DiskFormat, DiskSource, DiskSpec, IoLimits, NicModel,
    NicNetwork, NicSpec, PortForward, Protocol,
};
pub use id::{
    MacAddr, MacAddrError, VmId, VmIdError, check_device_id, check_vm_name, is_plain_name,
};
pub use valid::ValidDefinition;
pub use validate::check_path;
pub use validate::{MAX_DISK_BYTES, ModelError};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod tests;
