//! Field helpers both directions share: ids, enum values, sizes, model errors with wire names.

use crate::error::ApiError;
use limiquantix_vm::model::{self as m, VmId};

/// Bytes in a GiB.
pub(super) const GIB: u64 = 1 << 30;

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
pub(super) fn enum_value<E: TryFrom<i32>>(
    field: &str,
    value: i32,
    allowed: &str,
) -> Result<E, ApiError> {
    E::try_from(value).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{value} is not a known value (allowed: {allowed})"),
        )
    })
}

/// Converts `gib` GiB from field `field` to bytes, refusing sizes that overflow.
pub(super) fn size_bytes(field: &str, gib: u64) -> Result<u64, ApiError> {
    gib.checked_mul(GIB)
        .ok_or_else(|| ApiError::invalid(field, format!("{gib} GiB is too large")))
}

/// The id of the `i`th device of a kind: the requested one, or `{prefix}{i}` when empty.
pub(super) fn device_id(requested: &str, prefix: &str, i: usize) -> String {
    if requested.is_empty() {
        format!("{prefix}{i}")
    } else {
        requested.to_string()
    }
}

/// The device id of the `i`th disk or NIC (wire field `{f}.id`), and the caller's own id when
/// it is not a device id of this node: a control plane names devices by UUIDs and
/// `disk-<unixnano>`, which become `{prefix}{i}` here while the API keeps speaking the
/// caller's id (1 to 64 printable characters).
pub(super) fn device_ids(
    f: &str,
    requested: &str,
    prefix: &str,
    i: usize,
) -> Result<(String, Option<String>), ApiError> {
    let id = device_id(requested, prefix, i);
    if m::check_device_id(&id).is_ok() {
        return Ok((id, None));
    }
    let printable = requested.chars().all(|c| !c.is_control());
    if (1..=64).contains(&requested.chars().count()) && printable {
        return Ok((format!("{prefix}{i}"), Some(requested.to_string())));
    }
    Err(ApiError::invalid(
        format!("{f}.id"),
        format!("{requested:?} is not an id: use 1 to 64 printable characters"),
    ))
}
