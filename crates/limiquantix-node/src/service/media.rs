//! ChangeMedia: insert or eject a CD-ROM's medium, naming the drive and the ISO the ways
//! callers do.
//!
//! - The drive: its device id, the caller's id for it, or the LimiQuantix control plane's
//!   `sd<x>` name, computed as `'a' + number of disks + index among the caller's CD-ROMs` (the
//!   seed CD-ROM the node added is not counted): `sdb` is the first CD-ROM of a one-disk VM.
//! - The ISO: an absolute path inside a pool or the images directory, or a path relative to a
//!   pool (`iso/<file>`, as the control plane's pool scan reports them), looked up in each pool.

use super::core::NodeService;
use crate::error::ApiError;
use crate::translate::parse_vm_id;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use limiquantix_vm::model::{CdromRole, VmDefinition};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

impl<B: VmBackend> NodeService<B> {
    /// ChangeMedia.
    pub(super) async fn media(&self, req: pb::ChangeMediaRequest) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        if req.device.is_empty() {
            return Err(ApiError::invalid(
                "device",
                "required: the CD-ROM drive's id",
            ));
        }
        let def = self.inner.backend.get(&id).await?.definition;
        let device = cdrom_device(&def, &req.device)?;
        let iso = if req.iso_path.is_empty() {
            None
        } else {
            let inner = self.inner.clone();
            let path = req.iso_path.clone();
            Some(
                tokio::task::spawn_blocking(move || {
                    let path = in_pool(&inner.pool_dirs(), &path).unwrap_or(path);
                    inner.confinement().check("iso_path", &path)
                })
                .await??,
            )
        };
        tracing::info!(vm_id = %id, device = %device, eject = iso.is_none(), "changing CD-ROM media");
        self.inner.backend.change_media(&id, &device, iso).await?;
        Ok(())
    }
}

/// The device id of the CD-ROM a caller names `name`. A name that is neither a CD-ROM id nor
/// an `sd<x>` name is passed on (the backend says which CD-ROMs exist).
fn cdrom_device(def: &VmDefinition, name: &str) -> Result<String, ApiError> {
    let device = def.device_id_of(name);
    if def.cdroms.iter().any(|c| c.id == device) {
        return Ok(device.to_string());
    }
    let letter = match name.as_bytes() {
        [b's', b'd', l @ b'a'..=b'z'] => usize::from(l - b'a'),
        _ => return Ok(device.to_string()),
    };
    let theirs: Vec<&str> = def
        .cdroms
        .iter()
        .filter(|c| c.role != CdromRole::Seed)
        .map(|c| c.id.as_str())
        .collect();
    letter
        .checked_sub(def.disks.len())
        .and_then(|i| theirs.get(i))
        .map(|id| id.to_string())
        .ok_or_else(|| {
            ApiError::invalid(
                "device",
                format!(
                    "{name:?} names no CD-ROM of this VM: it has {} disk(s) and {} CD-ROM(s) \
                     (sd{} onwards), device ids: {}",
                    def.disks.len(),
                    theirs.len(),
                    char::from(b'a' + def.disks.len().min(25) as u8),
                    theirs.join(", ")
                ),
            )
        })
}

/// A relative ISO path found in a pool: the first pool (by id) holding a file there. Paths
/// with `..` or a root are never looked up.
fn in_pool(pools: &BTreeMap<String, PathBuf>, path: &str) -> Option<String> {
    let rel = Path::new(path);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    pools
        .values()
        .map(|dir| dir.join(rel))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_vm::model::CdromSpec;

    fn cdrom(id: &str, role: CdromRole) -> CdromSpec {
        CdromSpec {
            id: id.into(),
            path: None,
            bootable: false,
            role,
            boot_index: None,
        }
    }

    #[test]
    fn sd_names_count_disks_then_the_callers_cdroms() {
        let mut def = limiquantix_vm::model::fixtures::cloud_vm();
        def.cdroms = vec![
            cdrom("cdrom-0", CdromRole::Media),
            cdrom("seed", CdromRole::Seed),
        ];
        assert_eq!(cdrom_device(&def, "sdb").unwrap(), "cdrom-0");
        assert_eq!(cdrom_device(&def, "cdrom-0").unwrap(), "cdrom-0");
        let e = cdrom_device(&def, "sdc").unwrap_err().to_string();
        assert!(e.starts_with("device:") && e.contains("1 CD-ROM"), "{e}");
        assert!(cdrom_device(&def, "sda").is_err(), "sda is the disk");
        assert_eq!(cdrom_device(&def, "other").unwrap(), "other");
    }

    #[test]
    fn relative_isos_are_found_in_pools_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("iso")).unwrap();
        std::fs::write(dir.path().join("iso/x.iso"), b"x").unwrap();
        let pools = BTreeMap::from([("p1".to_string(), dir.path().to_owned())]);
        let found = in_pool(&pools, "iso/x.iso").unwrap();
        assert!(found.ends_with("iso/x.iso") && Path::new(&found).is_absolute());
        assert_eq!(in_pool(&pools, "iso/missing.iso"), None);
        assert_eq!(in_pool(&pools, "../iso/x.iso"), None);
        assert_eq!(in_pool(&pools, "/etc/passwd"), None);
    }
}
