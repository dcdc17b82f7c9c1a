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
//! The two directions do not import each other; both use the helpers of this module.
//!
//! [`VmDefinition`]: limiquantix_vm::model::VmDefinition
//! [`Confinement`]: crate::confine::Confinement

mod boot;
mod cdrom;
mod console;
mod disk;
mod nic;
mod request;
mod status;

pub use cdrom::SEED_CDROM_ID;
pub use request::{Context, Prepared, prepare_definition};
pub use status::{boot_progress, power_state, status_response, wire_boot_phase};

use crate::error::ApiError;
use limiquantix_vm::model::{self as m, VmId};

/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

/// Parses a request's `vm_id` field.
pub fn parse_vm_id(field: &str, value: &str) -> Result<VmId, ApiError> {
    VmId::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Maps a model validation error to the wire field names where they differ.
pub fn model_error(e: m::ModelError) -> ApiError {
    let field = match e.field.as_str() {
        "name" => "name".to_string(),
        f if f.starts_with("labels") => f.to_string(),
        "cpu.sockets" => "spec.cpu_sockets".into(),
        "cpu.cores" => "spec.cpu_cores".into(),
        "cpu.threads" => "spec.cpu_threads_per_core".into(),
        "memory.mib" => "spec.memory_mib".into(),
        f => format!("spec.{f}"),
    };
    ApiError::invalid(field, e.problem)
}

/// Reads a wire enum field; `allowed` lists its values for the error message.
fn enum_value<E: TryFrom<i32>>(field: &str, value: i32, allowed: &str) -> Result<E, ApiError> {
    E::try_from(value).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{value} is not a known value (allowed: {allowed})"),
        )
    })
}

/// Converts `gib` GiB from field `field` to bytes, refusing sizes that overflow.
fn size_bytes(field: &str, gib: u64) -> Result<u64, ApiError> {
    gib.checked_mul(GIB)
        .ok_or_else(|| ApiError::invalid(field, format!("{gib} GiB is too large")))
}

/// The id of the `i`th device of a kind: the requested one, or `{prefix}{i}` when empty.
fn device_id(requested: &str, prefix: &str, i: usize) -> String {
    if requested.is_empty() {
        format!("{prefix}{i}")
    } else {
        requested.to_string()
    }
}

#[cfg(test)]
mod tests;
