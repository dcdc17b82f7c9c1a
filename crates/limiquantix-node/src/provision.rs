//! The provisioning decision of CreateVM and the seed it produces.
//!
//! - `spec.cloud_init` given: its `user_data`, `meta_data`, `network_config` and `vendor_data`
//!   are used verbatim (each validated first; an invalid one fails the request with the
//!   validator's message, which names file, line and key but never quotes the content).
//!   Empty fields fall back to the seed engine's defaults (an empty cloud-config; meta-data with
//!   instance-id = VM id and local-hostname = VM name).
//! - not given, but a disk has a `backing_file` (a cloud image): the default seed — hostname =
//!   VM name, instance-id = VM id, user `admin` (or `default_seed.user`) with the given SSH keys
//!   and optional password (hashed), qemu-guest-agent installed and enabled.
//! - neither: no seed (an installation from an ISO, say).
//!
//! The seed is written by the backend to `<state>/vms/<vm_id>/cloud-init.iso` (mode 0600) and
//! attached as a read-only, never-bootable CD-ROM after the disks.

use crate::error::ApiError;
use crate::translate::SEED_CDROM_ID;
use limiquantix_cloudinit::iso9660::IsoOptions;
use limiquantix_cloudinit::seed::Seed;
use limiquantix_cloudinit::validate::ValidateOptions;
use limiquantix_cloudinit::{DefaultUserData, SeedError, ValidationError, instance_id};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{CdromRole, CdromSpec, VmId};
use std::path::PathBuf;

/// Largest single cloud-init document accepted (the seed engine's limit).
pub const MAX_DOCUMENT_BYTES: usize = limiquantix_cloudinit::validate::MAX_FILE_BYTES;

/// Which seed a VM gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedKind {
    /// The request's own cloud-init documents.
    Custom,
    /// The default seed of a cloud-image VM.
    Default,
}

/// A seed ready to attach.
pub struct PlannedSeed {
    /// Custom or default.
    pub kind: SeedKind,
    /// The ISO 9660 image bytes.
    pub iso: Vec<u8>,
    /// Validation warnings (file, line, key; never content), for the response message.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for PlannedSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedSeed")
            .field("kind", &self.kind)
            .field("iso_len", &self.iso.len())
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

/// The guest host name for VM `name`: its first dot-separated label, `_` turned into `-`.
pub fn hostname_for(name: &str) -> Result<String, ApiError> {
    let label = name.split('.').next().unwrap_or(name).replace('_', "-");
    let label = label.trim_matches('-').to_string();
    limiquantix_cloudinit::validate::validate_hostname(&label).map_err(|e| {
        ApiError::invalid(
            "name",
            format!("cannot be used as the guest host name {label:?}: {e}"),
        )
    })?;
    Ok(label)
}

fn wire_field(file: &str) -> String {
    match file {
        "user-data" => "spec.cloud_init.user_data".into(),
        "meta-data" => "spec.cloud_init.meta_data".into(),
        "network-config" => "spec.cloud_init.network_config".into(),
        "vendor-data" => "spec.cloud_init.vendor_data".into(),
        "hostname" => "name".into(),
        "user" | "user name" => "spec.default_seed.user".into(),
        f if f.contains("ssh") => "spec.default_seed.ssh_authorized_keys".into(),
        f if f.contains("password") => "spec.default_seed.password".into(),
        f => format!("spec.cloud_init ({f})"),
    }
}

fn invalid(e: ValidationError) -> ApiError {
    ApiError::invalid(wire_field(&e.file), e.to_string())
}

fn seed_error(e: SeedError) -> ApiError {
    match e {
        SeedError::Invalid(v) => invalid(v),
        other => ApiError::Internal(format!("building the seed failed: {other}")),
    }
}

fn document(field: &str, s: &str) -> Result<Option<Vec<u8>>, ApiError> {
    if s.len() > MAX_DOCUMENT_BYTES {
        return Err(ApiError::TooLarge {
            field: field.into(),
            problem: format!(
                "{} bytes is larger than the {MAX_DOCUMENT_BYTES} bytes allowed per document",
                s.len()
            ),
        });
    }
    Ok((!s.is_empty()).then(|| s.as_bytes().to_vec()))
}

/// Decides and builds the seed of VM `id` named `name` (CPU-bound; call from blocking context).
pub fn plan(
    spec: &pb::VmSpec,
    id: &VmId,
    name: &str,
    has_backing_file: bool,
    now_unix: i64,
) -> Result<Option<PlannedSeed>, ApiError> {
    let iid = instance_id::instance_id(id.as_str(), 0);
    let (kind, seed) = if let Some(ci) = &spec.cloud_init {
        let mut seed = Seed::new(iid, hostname_for(name)?);
        seed.user_data = document("spec.cloud_init.user_data", &ci.user_data)?;
        seed.meta_data = document("spec.cloud_init.meta_data", &ci.meta_data)?;
        seed.network_config = document("spec.cloud_init.network_config", &ci.network_config)?;
        seed.vendor_data = document("spec.cloud_init.vendor_data", &ci.vendor_data)?;
        (SeedKind::Custom, seed)
    } else if has_backing_file {
        let opts = spec.default_seed.clone().unwrap_or_default();
        let mut ud = DefaultUserData::new(hostname_for(name)?).ssh_keys(opts.ssh_authorized_keys);
        if !opts.user.is_empty() {
            ud = ud.user(opts.user);
        }
        if !opts.password.is_empty() {
            ud = ud.password(&opts.password).map_err(seed_error)?;
        }
        (
            SeedKind::Default,
            Seed::from_default_user_data(iid, &ud).map_err(seed_error)?,
        )
    } else {
        return Ok(None);
    };
    let warnings = seed
        .validate(&ValidateOptions::default())
        .map_err(invalid)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let iso = seed.to_iso(&IsoOptions::at(now_unix)).map_err(seed_error)?;
    Ok(Some(PlannedSeed {
        kind,
        iso,
        warnings,
    }))
}

/// The seed CD-ROM entry of the definition (after every other drive, never bootable).
pub fn seed_cdrom(seed_iso: PathBuf) -> CdromSpec {
    CdromSpec {
        id: SEED_CDROM_ID.into(),
        path: Some(seed_iso),
        bootable: false,
        role: CdromRole::Seed,
        boot_index: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> VmId {
        VmId::parse("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f").unwrap()
    }

    #[test]
    fn host_names_from_vm_names() {
        assert_eq!(hostname_for("web1").unwrap(), "web1");
        assert_eq!(hostname_for("web_1.example.com").unwrap(), "web-1");
        assert!(hostname_for("_").is_err());
    }

    #[test]
    fn the_decision() {
        let spec = pb::VmSpec::default();
        assert!(plan(&spec, &id(), "web1", false, 0).unwrap().is_none());
        let d = plan(&spec, &id(), "web1", true, 0).unwrap().unwrap();
        assert_eq!(d.kind, SeedKind::Default);
        let custom = pb::VmSpec {
            cloud_init: Some(pb::CloudInitConfig {
                user_data: "#cloud-config\nhostname: x\n".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = plan(&custom, &id(), "web1", false, 0).unwrap().unwrap();
        assert_eq!(c.kind, SeedKind::Custom);
    }

    #[test]
    fn malformed_cloud_config_names_the_field_not_the_content() {
        let spec = pb::VmSpec {
            cloud_init: Some(pb::CloudInitConfig {
                user_data: "#cloud-config\nusers: [\n  secret-token-123\n".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = plan(&spec, &id(), "web1", true, 0).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("spec.cloud_init.user_data:"), "{msg}");
        assert!(!msg.contains("secret-token-123"), "{msg}");
    }
}
