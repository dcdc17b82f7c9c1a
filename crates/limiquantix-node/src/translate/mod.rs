//! Translation between the wire types of `limiquantix.node.v1` and the hypervisor's model.
//!
//! [`prepare_definition`] turns a CreateVM request into a validated [`VmDefinition`]: every
//! field is checked here with its wire name (`spec.disks[0].size_gib`), every host path goes
//! through [`Confinement`], and images are opened to check their format and backing chain.
//! It touches the filesystem: call from blocking context. The opposite direction
//! ([`status_response`]) builds `VMStatusResponse` from a backend entry.
//!
//! The module is split by direction and by device family:
//!
//! - request → definition: `request` (the request as a whole, CPU and memory), `disk` (disks
//!   and their images), `cdrom`, `nic`, `console`, `boot` (firmware, guest OS, boot order);
//! - entry → wire: `status`.
//!
//! The two directions do not import each other; both use the field helpers of `fields`.
//!
//! [`VmDefinition`]: limiquantix_vm::model::VmDefinition
//! [`Confinement`]: crate::confine::Confinement

mod boot;
mod cdrom;
mod console;
mod disk;
mod fields;
mod hotplug;
mod nic;
mod request;
mod status;
mod usage;

pub use cdrom::SEED_CDROM_ID;
pub use fields::{model_error, parse_vm_id};
pub use hotplug::{attach_disk, attach_nic};
pub use request::{Context, Prepared, prepare_definition};
pub use status::{boot_progress, power_state, status_response, wire_boot_phase};
pub use usage::{resource_usage, vm_metrics};

#[cfg(test)]
mod tests;
