//! `snapshots.json` next to `vm.json`: the VM's snapshot tree and, while an operation runs,
//! what it is doing (`pending`), written before the first disk is touched so a restarted
//! backend can settle it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::core::{Result, blocking};
use crate::persist::{self, PersistError};
use limiquantix_vm::snapshot::{SnapshotRecord, SnapshotTree};

/// What `snapshots.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(in crate::backend) struct SnapshotFile {
    /// The tree.
    #[serde(flatten)]
    pub tree: SnapshotTree,
    /// The operation in progress, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// An operation on the disks that has started and not been recorded as finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::backend) struct Pending {
    /// What it does.
    pub op: PendingOp,
    /// The snapshot (its id is the tag in each disk; its disks are the ones touched).
    pub record: SnapshotRecord,
}

/// The kinds of [`Pending`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(in crate::backend) enum PendingOp {
    /// Taking the snapshot.
    Create,
    /// Going back to it.
    Revert,
    /// Deleting it.
    Delete,
}

/// Reads the file; a missing one is an empty tree.
pub(super) async fn load(path: &Path) -> Result<SnapshotFile> {
    let path = path.to_owned();
    blocking(move || {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SnapshotFile::default());
            }
            Err(source) => return Err(PersistError::Io { path, source }.into()),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            PersistError::Invalid {
                path,
                problem: e.to_string(),
            }
            .into()
        })
    })
    .await
}

/// Writes the file atomically (mode 0600).
pub(super) async fn save(path: &Path, file: &SnapshotFile) -> Result<()> {
    let path = path.to_owned();
    let mut bytes = serde_json::to_vec_pretty(file).map_err(|e| PersistError::Invalid {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    bytes.push(b'\n');
    blocking(move || Ok(persist::write_atomic(&path, &bytes, 0o600)?)).await
}
