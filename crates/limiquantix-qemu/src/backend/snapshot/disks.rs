//! Which disks a snapshot covers: every writable disk, which must be qcow2 (a raw image cannot
//! hold internal snapshots). Read-only disks and CD-ROMs (the seed among them) are never part
//! of a snapshot; an overlay's backing image is never written (the snapshot lives in the
//! overlay).

use std::path::PathBuf;

use crate::argv::top_node;
use crate::backend::types::QemuError;
use crate::paths::RuntimePaths;
use limiquantix_vm::BackendError;
use limiquantix_vm::model::{DiskFormat, VmDefinition, VmId};

/// One disk of a snapshot.
#[derive(Debug, Clone)]
pub(super) struct SnapDisk {
    /// The disk's device id.
    pub id: String,
    /// Its format node (`<id>-fmt`; below the throttle node of a disk with I/O limits).
    pub node: String,
    /// The node its device attaches to (the throttle node of a disk with I/O limits): the
    /// `blockdev-snapshot-*-internal-sync` commands want a root node.
    pub root: String,
    /// Its image file.
    pub file: PathBuf,
}

/// The disks a new snapshot of `def` covers, in definition order (the first holds the memory).
pub(super) fn writable_disks(
    vm_id: &VmId,
    def: &VmDefinition,
    paths: &RuntimePaths,
) -> Result<Vec<SnapDisk>, QemuError> {
    let mut out = Vec::new();
    for (i, d) in def.disks.iter().enumerate().filter(|(_, d)| !d.readonly) {
        if d.format == DiskFormat::Raw {
            return Err(refused(format!(
                "VM {vm_id}: disk {:?} is raw, and a raw image cannot hold snapshots (convert \
                 it to qcow2, or attach it read-only to leave it out)",
                d.id
            )));
        }
        out.push(disk(def, paths, i));
    }
    if out.is_empty() {
        return Err(refused(format!(
            "VM {vm_id} has no writable disk to snapshot"
        )));
    }
    Ok(out)
}

/// The disks with these ids that the definition still has.
pub(super) fn named_disks(
    def: &VmDefinition,
    paths: &RuntimePaths,
    ids: &[String],
) -> Vec<SnapDisk> {
    ids.iter()
        .filter_map(|id| def.disks.iter().position(|d| &d.id == id))
        .map(|i| disk(def, paths, i))
        .collect()
}

fn disk(def: &VmDefinition, paths: &RuntimePaths, i: usize) -> SnapDisk {
    let d = &def.disks[i];
    SnapDisk {
        id: d.id.clone(),
        node: format!("{}-fmt", d.id),
        root: top_node(&d.id, d.limits.as_ref()),
        file: paths
            .disk_of(def, i)
            .unwrap_or_else(|| paths.disk_file(i, d.format)),
    }
}

/// A snapshot refused for a reason of the host or the VM (FAILED_PRECONDITION).
pub(super) fn refused(message: String) -> QemuError {
    QemuError::Refused(BackendError::Precondition(message))
}
