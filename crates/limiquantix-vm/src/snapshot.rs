//! VM snapshots, whatever takes them: the request ([`SnapshotRequest`]), what a listing answers
//! ([`SnapshotInfo`]), the name rule ([`check_snapshot_name`]) and the tree
//! ([`SnapshotTree`]): each snapshot's parent is the snapshot that was current when it was
//! taken; reverting makes a snapshot current; deleting one hands its children to its parent.
//!
//! Ids are `snap-<n>`, `n` counting up per VM and never reused (the tree keeps the counter);
//! a backend may use the id as its own tag (QEMU: the internal snapshot's name in each disk).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::model::VmId;
use crate::state::VmState;

/// Longest snapshot name.
pub const MAX_NAME: usize = 64;

/// What CreateSnapshot asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The name: 1–64 of letters, digits, `.`, `_`, `-`; unique per VM.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Freeze the guest's filesystems through its agent around a disk-only snapshot of a
    /// running VM (a memory snapshot is consistent by itself; a stopped VM has nothing to
    /// freeze).
    pub quiesce: bool,
    /// Disks only, no memory, even when the VM runs.
    pub disk_only: bool,
}

/// One snapshot as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id (`snap-<n>`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was taken.
    pub created_at: SystemTime,
    /// The VM's state when it was taken.
    pub vm_state: VmState,
    /// The snapshot that was current when it was taken.
    pub parent_id: Option<String>,
    /// It is the VM's current snapshot (the parent of the next one).
    pub current: bool,
    /// It holds the VM's memory and device state.
    pub memory: bool,
}

/// One snapshot as the tree stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The VM's state when it was taken.
    pub vm_state: VmState,
    /// Its parent.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// It holds memory and device state.
    #[serde(default)]
    pub memory: bool,
    /// The ids of the disks it covers (for a memory snapshot the first holds the memory).
    #[serde(default)]
    pub disks: Vec<String>,
}

/// A VM's snapshots, oldest first, and which one is current.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTree {
    /// The snapshots, oldest first.
    #[serde(default)]
    pub snapshots: Vec<SnapshotRecord>,
    /// The current snapshot.
    #[serde(default)]
    pub current: Option<String>,
    /// The number of the last id handed out.
    #[serde(default)]
    pub last_seq: u64,
}

/// Checks a snapshot name: 1–64 of ASCII letters, digits, `.`, `_`, `-`.
pub fn check_snapshot_name(name: &str) -> Result<(), BackendError> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BackendError::Invalid(format!(
            "name: {name:?} is not a snapshot name (1 to {MAX_NAME} of letters, digits, '.', \
             '_', '-')"
        )))
    }
}

impl SnapshotTree {
    /// Checks the name of a new snapshot: valid, and not taken on this VM.
    pub fn check_new_name(&self, vm_id: &VmId, name: &str) -> Result<(), BackendError> {
        check_snapshot_name(name)?;
        if self.snapshots.iter().any(|s| s.name == name) {
            return Err(BackendError::SnapshotExists {
                vm_id: vm_id.clone(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Hands out the next id, `snap-<n>`.
    pub fn next_id(&mut self) -> String {
        self.last_seq += 1;
        format!("snap-{}", self.last_seq)
    }

    /// The snapshot `id`, or [`BackendError::DeviceNotFound`] (kind `snapshot`).
    pub fn get(&self, vm_id: &VmId, id: &str) -> Result<&SnapshotRecord, BackendError> {
        self.snapshots
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| BackendError::DeviceNotFound {
                vm_id: vm_id.clone(),
                kind: "snapshot",
                device_id: id.to_owned(),
            })
    }

    /// A new record for a snapshot taken now, its parent the current snapshot.
    pub fn record(
        &mut self,
        req: &SnapshotRequest,
        vm_state: VmState,
        memory: bool,
    ) -> SnapshotRecord {
        SnapshotRecord {
            id: self.next_id(),
            name: req.name.clone(),
            description: req.description.clone(),
            created_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            vm_state,
            parent_id: self.current.clone(),
            memory,
            disks: Vec::new(),
        }
    }

    /// Adds a taken snapshot and makes it current.
    pub fn insert(&mut self, record: SnapshotRecord) {
        self.current = Some(record.id.clone());
        self.snapshots.push(record);
    }

    /// Removes snapshot `id`: its children get its parent, and when it was current its parent
    /// becomes current. Returns it.
    pub fn remove(&mut self, id: &str) -> Option<SnapshotRecord> {
        let at = self.snapshots.iter().position(|s| s.id == id)?;
        let gone = self.snapshots.remove(at);
        for child in self
            .snapshots
            .iter_mut()
            .filter(|s| s.parent_id.as_deref() == Some(id))
        {
            child.parent_id.clone_from(&gone.parent_id);
        }
        if self.current.as_deref() == Some(id) {
            self.current.clone_from(&gone.parent_id);
        }
        Some(gone)
    }

    /// Every snapshot, oldest first, the current one marked.
    pub fn list(&self) -> Vec<SnapshotInfo> {
        self.snapshots
            .iter()
            .map(|s| SnapshotInfo {
                id: s.id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                created_at: UNIX_EPOCH + Duration::from_millis(s.created_at_ms),
                vm_state: s.vm_state,
                parent_id: s.parent_id.clone(),
                current: self.current.as_deref() == Some(s.id.as_str()),
                memory: s.memory,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> SnapshotRequest {
        SnapshotRequest {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "before-upgrade_1.2", &"x".repeat(64)] {
            check_snapshot_name(good).unwrap();
        }
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(65), "a,b"] {
            assert!(
                matches!(check_snapshot_name(bad), Err(BackendError::Invalid(m)) if m.starts_with("name:")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_tree_keeps_parents_current_and_children() {
        let vm = VmId::generate();
        let mut t = SnapshotTree::default();
        let a = t.record(&req("a"), VmState::Running, true);
        t.insert(a);
        let b = t.record(&req("b"), VmState::Running, true);
        assert_eq!(b.parent_id.as_deref(), Some("snap-1"));
        t.insert(b);
        assert!(matches!(
            t.check_new_name(&vm, "a"),
            Err(BackendError::SnapshotExists { .. })
        ));
        // Back to a, then c branches off a.
        t.current = Some("snap-1".into());
        let c = t.record(&req("c"), VmState::Stopped, false);
        t.insert(c);
        let l = t.list();
        assert_eq!(
            l.iter()
                .map(|s| (s.id.as_str(), s.parent_id.as_deref(), s.current))
                .collect::<Vec<_>>(),
            [
                ("snap-1", None, false),
                ("snap-2", Some("snap-1"), false),
                ("snap-3", Some("snap-1"), true)
            ]
        );
        // Deleting a keeps its children valid: they hang from a's parent (none).
        t.remove("snap-1").unwrap();
        assert!(t.snapshots.iter().all(|s| s.parent_id.is_none()));
        t.remove("snap-3").unwrap();
        assert_eq!(t.current, None);
        assert!(matches!(
            t.get(&vm, "snap-3"),
            Err(BackendError::DeviceNotFound {
                kind: "snapshot",
                ..
            })
        ));
        // Ids are never reused.
        assert_eq!(t.next_id(), "snap-4");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<SnapshotTree>(&json).unwrap(), t);
    }
}
