//! Stable views of storage pools, their files and their volumes: what `-o json|yaml` prints and
//! what the tables show (as `view.rs` does for VMs and images).

use limiquantix_proto::v1::{
    StoragePoolFileEntry, StoragePoolInfoResponse, StoragePoolType, VolumeInfoResponse,
};
use serde::Serialize;

use crate::output::Table;
use crate::units::human_bytes;

/// A storage pool as lqctl shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolView {
    /// The pool's id.
    pub id: String,
    /// Its kind: local-dir, nfs, local-lvm, ceph-rbd, ceph-fs, iscsi or unspecified.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it can be used now.
    pub available: bool,
    /// Why it cannot, when it cannot (its directory is missing, its share is not mounted, ...).
    pub unavailable_reason: Option<String>,
    /// Where it lives on the node (its directory, or its share's mount point).
    pub path: String,
    /// The NFS share (`server:/export`) or device behind it, if any.
    pub source: Option<String>,
    /// Whether the node mounted the share itself (and unmounts it when the pool is deleted).
    pub mounted_by_node: bool,
    /// Its size in bytes: its cap when it has one, else its filesystem's size.
    pub total_bytes: u64,
    /// Bytes left: of its cap when it has one (never more than the filesystem has free), else
    /// its filesystem's free bytes.
    pub available_bytes: u64,
    /// Bytes used: its volumes' allocation when it has a cap, else its filesystem's use.
    pub used_bytes: u64,
    /// The pool's own size cap in bytes, if it has one.
    pub capacity_limit_bytes: Option<u64>,
    /// Bytes its volumes and images take on disk.
    pub allocated_bytes: u64,
    /// Bytes its volumes may grow to (their virtual sizes).
    pub provisioned_bytes: u64,
    /// Provisioned bytes over the pool's capacity (its cap, else the filesystem's size).
    pub overcommit_ratio: f64,
    /// Volumes in it.
    pub volume_count: u32,
    /// The VMs with a disk in it (their ids).
    pub vm_ids: Vec<String>,
}

/// A file or directory of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileView {
    /// Its name.
    pub name: String,
    /// Its path relative to the pool.
    pub path: String,
    /// Whether it is a directory.
    pub is_directory: bool,
    /// Its kind, from its content: qcow2, raw, iso, directory, ...
    pub file_type: String,
    /// Its size in bytes (0 for a directory).
    pub size_bytes: u64,
    /// When it was last modified (RFC 3339).
    pub modified_at: String,
    /// Its mode bits, octal.
    pub permissions: String,
}

/// A volume of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VolumeView {
    /// The volume's id.
    pub id: String,
    /// Its pool.
    pub pool: String,
    /// Its virtual (guest-visible) size in bytes.
    pub size_bytes: u64,
    /// Bytes it takes on disk.
    pub allocated_bytes: u64,
    /// Its format: qcow2 or raw.
    pub format: String,
    /// Its file on the node.
    pub path: String,
    /// The VM using it, if any.
    pub attached_to: Option<String>,
    /// The image it is an overlay on, if any.
    pub backing_file: Option<String>,
    /// Its snapshots, by name.
    pub snapshots: Vec<String>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The lowercase name of a wire pool type: `STORAGE_POOL_TYPE_LOCAL_DIR` → `local-dir`.
pub fn pool_type_name(kind: i32) -> String {
    StoragePoolType::try_from(kind)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("STORAGE_POOL_TYPE_")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .unwrap_or_else(|_| format!("type-{kind}"))
}

impl From<&StoragePoolInfoResponse> for PoolView {
    fn from(p: &StoragePoolInfoResponse) -> Self {
        PoolView {
            id: p.pool_id.clone(),
            kind: pool_type_name(p.r#type),
            available: p.unavailable_reason.is_empty(),
            unavailable_reason: non_empty(&p.unavailable_reason),
            path: p.mount_path.clone(),
            source: non_empty(&p.device_path),
            mounted_by_node: p.mounted_by_node,
            total_bytes: p.total_bytes,
            available_bytes: p.available_bytes,
            used_bytes: p.used_bytes,
            capacity_limit_bytes: (p.capacity_limit_bytes > 0).then_some(p.capacity_limit_bytes),
            allocated_bytes: p.allocated_bytes,
            provisioned_bytes: p.provisioned_bytes,
            overcommit_ratio: p.overcommit_ratio,
            volume_count: p.volume_count,
            vm_ids: p.vm_ids.clone(),
        }
    }
}

impl From<&StoragePoolFileEntry> for FileView {
    fn from(e: &StoragePoolFileEntry) -> Self {
        FileView {
            name: e.name.clone(),
            path: e.path.clone(),
            is_directory: e.is_directory,
            file_type: e.file_type.clone(),
            size_bytes: e.size_bytes,
            modified_at: e.modified_at.clone(),
            permissions: e.permissions.clone(),
        }
    }
}

impl From<&VolumeInfoResponse> for VolumeView {
    fn from(v: &VolumeInfoResponse) -> Self {
        VolumeView {
            id: v.volume_id.clone(),
            pool: v.pool_id.clone(),
            size_bytes: v.size_bytes,
            allocated_bytes: v.allocated_bytes,
            format: v.format.clone(),
            path: v.path.clone(),
            attached_to: non_empty(&v.attached_to),
            backing_file: non_empty(&v.backing_file),
            snapshots: v.snapshot_ids.clone(),
        }
    }
}

impl PoolView {
    /// `ok`, or `unavailable: REASON`.
    pub fn state(&self) -> String {
        match &self.unavailable_reason {
            None => "ok".to_owned(),
            Some(r) => format!("unavailable: {r}"),
        }
    }

    /// Whether its figures mean anything (an unavailable pool reports zeros).
    fn measured(&self) -> bool {
        self.available || self.total_bytes > 0
    }
}

/// `0.42x`.
fn ratio(r: f64) -> String {
    format!("{r:.2}x")
}

/// A byte count for a table, `-` when unknown.
fn bytes_or_dash(known: bool, n: u64) -> String {
    if known {
        human_bytes(n)
    } else {
        "-".to_owned()
    }
}

/// The `pool list` table.
pub fn pool_table(pools: &[PoolView]) -> String {
    let mut t = Table::new(&[
        "ID",
        "TYPE",
        "STATE",
        "SIZE",
        "FREE",
        "ALLOCATED",
        "PROVISIONED",
        "OVERCOMMIT",
        "VOLUMES",
        "VMS",
        "PATH",
    ]);
    for p in pools {
        let m = p.measured();
        t.row(vec![
            p.id.clone(),
            p.kind.clone(),
            p.state(),
            bytes_or_dash(m, p.total_bytes),
            bytes_or_dash(m, p.available_bytes),
            human_bytes(p.allocated_bytes),
            human_bytes(p.provisioned_bytes),
            if m {
                ratio(p.overcommit_ratio)
            } else {
                "-".to_owned()
            },
            p.volume_count.to_string(),
            p.vm_ids.len().to_string(),
            p.path.clone(),
        ]);
    }
    t.render()
}

/// The `pool show` text: one `key: value` per line, a `vm:` line per VM.
pub fn pool_details(p: &PoolView) -> String {
    let m = p.measured();
    let mut lines = vec![
        ("id", p.id.clone()),
        ("type", p.kind.clone()),
        ("state", p.state()),
        ("path", p.path.clone()),
    ];
    if let Some(source) = &p.source {
        lines.push(("source", source.clone()));
        let mounted = if p.mounted_by_node {
            "by the node (unmounted when the pool is deleted)"
        } else {
            "adopted (mounted before the node used it; left mounted)"
        };
        lines.push(("mounted", mounted.to_owned()));
    }
    lines.extend([
        (
            "cap",
            p.capacity_limit_bytes
                .map_or_else(|| "none (the filesystem's size)".to_owned(), human_bytes),
        ),
        ("size", bytes_or_dash(m, p.total_bytes)),
        ("free", bytes_or_dash(m, p.available_bytes)),
        ("used", bytes_or_dash(m, p.used_bytes)),
        ("allocated", human_bytes(p.allocated_bytes)),
        ("provisioned", human_bytes(p.provisioned_bytes)),
        (
            "overcommit",
            if m {
                ratio(p.overcommit_ratio)
            } else {
                "-".to_owned()
            },
        ),
        ("volumes", p.volume_count.to_string()),
    ]);
    if p.vm_ids.is_empty() {
        lines.push(("vms", "none".to_owned()));
    }
    for vm in &p.vm_ids {
        lines.push(("vm", vm.clone()));
    }
    key_values(&lines)
}

/// `key: value` lines, the values aligned.
fn key_values(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}

/// The `pool files` table; directories end in `/`.
pub fn file_table(files: &[FileView]) -> String {
    let mut t = Table::new(&["NAME", "TYPE", "SIZE", "MODIFIED", "PERMISSIONS"]);
    for f in files {
        let (name, size) = if f.is_directory {
            (format!("{}/", f.name), "-".to_owned())
        } else {
            (f.name.clone(), human_bytes(f.size_bytes))
        };
        t.row(vec![
            name,
            f.file_type.clone(),
            size,
            f.modified_at.clone(),
            f.permissions.clone(),
        ]);
    }
    t.render()
}

fn dash(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "-".to_owned())
}

/// The `volume list` table.
pub fn volume_table(volumes: &[VolumeView]) -> String {
    let mut t = Table::new(&[
        "ID",
        "SIZE",
        "ALLOCATED",
        "FORMAT",
        "ATTACHED TO",
        "BACKING",
        "SNAPSHOTS",
    ]);
    for v in volumes {
        t.row(vec![
            v.id.clone(),
            human_bytes(v.size_bytes),
            human_bytes(v.allocated_bytes),
            v.format.clone(),
            dash(v.attached_to.as_ref()),
            dash(v.backing_file.as_ref()),
            if v.snapshots.is_empty() {
                "-".to_owned()
            } else {
                v.snapshots.join(",")
            },
        ]);
    }
    t.render()
}

/// One volume: one `key: value` per line (what `volume create` prints).
pub fn volume_details(v: &VolumeView) -> String {
    let lines = [
        ("id", v.id.clone()),
        ("pool", v.pool.clone()),
        ("size", human_bytes(v.size_bytes)),
        ("allocated", human_bytes(v.allocated_bytes)),
        ("format", v.format.clone()),
        ("path", v.path.clone()),
        ("attached", dash(v.attached_to.as_ref())),
        ("backing", dash(v.backing_file.as_ref())),
        (
            "snapshots",
            if v.snapshots.is_empty() {
                "-".to_owned()
            } else {
                v.snapshots.join(", ")
            },
        ),
    ];
    key_values(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::snapshot::assert_snapshot;
    use crate::units::{GIB, MIB};

    // `..Default::default()` stays so the fixture survives new fields in the wire type.
    #[allow(clippy::needless_update)]
    fn pools() -> Vec<StoragePoolInfoResponse> {
        vec![
            StoragePoolInfoResponse {
                pool_id: "local".into(),
                r#type: StoragePoolType::LocalDir as i32,
                mount_path: "/var/lib/limiquantix/pools/local".into(),
                total_bytes: 50 * GIB,
                available_bytes: 29 * GIB,
                used_bytes: 3 * GIB + 512 * MIB,
                volume_count: 3,
                vm_ids: vec!["3f2a9c1e-7b4d-4e8a-9f00-0123456789ab".into()],
                capacity_limit_bytes: 50 * GIB,
                allocated_bytes: 3 * GIB + 512 * MIB,
                provisioned_bytes: 21 * GIB,
                overcommit_ratio: 0.42,
                ..Default::default()
            },
            StoragePoolInfoResponse {
                pool_id: "shared".into(),
                r#type: StoragePoolType::Nfs as i32,
                mount_path: "/var/lib/limiquantix/pools/shared".into(),
                device_path: "nas.example:/srv/vms".into(),
                unavailable_reason: "the share is not mounted".into(),
                mounted_by_node: true,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn pool_table_and_details() {
        let views: Vec<PoolView> = pools().iter().map(PoolView::from).collect();
        assert_snapshot("pool_list.txt", &pool_table(&views));
        assert_snapshot("pool_show.txt", &pool_details(&views[0]));
        assert_snapshot("pool_show_nfs.txt", &pool_details(&views[1]));
        assert_snapshot(
            "pool_list.json",
            &(serde_json::to_string_pretty(&views).unwrap() + "\n"),
        );
    }

    #[test]
    fn pool_states_and_types() {
        let views: Vec<PoolView> = pools().iter().map(PoolView::from).collect();
        assert_eq!(views[0].state(), "ok");
        assert_eq!(views[1].state(), "unavailable: the share is not mounted");
        assert_eq!(views[0].kind, "local-dir");
        assert_eq!(views[1].kind, "nfs");
        assert_eq!(pool_type_name(StoragePoolType::CephRbd as i32), "ceph-rbd");
        assert_eq!(pool_type_name(99), "type-99");
        assert_eq!(views[1].capacity_limit_bytes, None);
    }

    #[test]
    fn volume_and_file_tables() {
        let volumes: Vec<VolumeView> = [
            VolumeInfoResponse {
                volume_id: "data".into(),
                pool_id: "local".into(),
                size_bytes: 20 * GIB,
                format: "qcow2".into(),
                path: "/var/lib/limiquantix/pools/local/data.qcow2".into(),
                attached_to: "web1".into(),
                allocated_bytes: 196_608,
                snapshot_ids: vec!["before-upgrade".into(), "nightly".into()],
                ..Default::default()
            },
            VolumeInfoResponse {
                volume_id: "root".into(),
                pool_id: "local".into(),
                size_bytes: 10 * GIB,
                format: "qcow2".into(),
                path: "/var/lib/limiquantix/pools/local/root.qcow2".into(),
                allocated_bytes: 3 * MIB,
                backing_file: "/var/lib/limiquantix/images/debian-12.qcow2".into(),
                ..Default::default()
            },
        ]
        .iter()
        .map(VolumeView::from)
        .collect();
        assert_snapshot("volume_list.txt", &volume_table(&volumes));
        assert_snapshot("volume_show.txt", &volume_details(&volumes[0]));
        let files: Vec<FileView> = [
            StoragePoolFileEntry {
                name: "iso".into(),
                path: "iso".into(),
                is_directory: true,
                modified_at: "2026-01-02T03:04:05Z".into(),
                file_type: "directory".into(),
                permissions: "755".into(),
                ..Default::default()
            },
            StoragePoolFileEntry {
                name: "data.qcow2".into(),
                path: "data.qcow2".into(),
                size_bytes: 197_120,
                modified_at: "2026-01-02T03:05:00Z".into(),
                file_type: "qcow2".into(),
                permissions: "644".into(),
                ..Default::default()
            },
        ]
        .iter()
        .map(FileView::from)
        .collect();
        assert_snapshot("pool_files.txt", &file_table(&files));
    }
}
