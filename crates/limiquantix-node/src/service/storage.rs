//! The storage pools of the node API: InitStoragePool (local directories, NFS shares),
//! DestroyStoragePool, GetStoragePoolInfo, ListStoragePools and ListStoragePoolFiles.
//! Capacity is the filesystem's (`statvfs`) and the volumes' (allocated and promised); file
//! types come from their content (the storage crate's magic table), never their names.
//!
//! Ceph, iSCSI and LVM pools answer FAILED_PRECONDITION naming what this node lacks; an
//! unknown pool is NOT_FOUND with "not found", the words the LimiQuantix control plane looks
//! for. A pool whose directory or share is gone is reported unavailable with the reason and
//! the VMs on it, never dropped; it is usable again as soon as it is back.

use super::core::{Inner, NodeService};
use super::volume::Attachment;
use crate::error::ApiError;
use crate::pools::{DestroyError, Pool, PoolError, PoolKind, availability};
use limiquantix_proto::v1 as pb;
use limiquantix_storage::magic::{self, HEADER_LEN};
use limiquantix_storage::volume::pool_usage;
use limiquantix_vm::VmBackend;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

/// Most entries one ListStoragePoolFiles answers.
const MAX_ENTRIES: usize = 10_000;
/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

impl<B: VmBackend> NodeService<B> {
    /// InitStoragePool.
    pub(super) async fn init_pool(
        &self,
        req: pb::InitStoragePoolRequest,
    ) -> Result<pb::StoragePoolInfoResponse, ApiError> {
        let kind =
            pb::StoragePoolType::try_from(req.r#type).unwrap_or(pb::StoragePoolType::Unspecified);
        let config = req.config.clone().unwrap_or_default();
        let (pool, created) = match kind {
            // The control plane sends UNSPECIFIED for pools without a backend: a local directory.
            pb::StoragePoolType::LocalDir | pb::StoragePoolType::Unspecified => {
                let local = config.local.unwrap_or_default();
                let cap = match local.capacity_gib {
                    Some(0) => {
                        return Err(ApiError::invalid(
                            "config.local.capacity_gib",
                            "0 is no capacity; leave it unset for no cap",
                        ));
                    }
                    Some(g) => Some(g.checked_mul(GIB).ok_or_else(|| {
                        ApiError::invalid(
                            "config.local.capacity_gib",
                            format!("{g} GiB is too large"),
                        )
                    })?),
                    None => None,
                };
                let (inner, id) = (self.inner.clone(), req.pool_id.clone());
                tokio::task::spawn_blocking(move || {
                    inner
                        .pools
                        .init_local(&id, &local.path, cap)
                        .map_err(pool_error)
                })
                .await??
            }
            pb::StoragePoolType::Nfs => {
                self.init_nfs(&req.pool_id, config.nfs.unwrap_or_default())
                    .await?
            }
            other => {
                let name = other.as_str_name().trim_start_matches("STORAGE_POOL_TYPE_");
                return Err(ApiError::Precondition(format!(
                    "type: {name} pools are not supported by this node (it has no {name} \
                     client set up); use a LOCAL_DIR or NFS pool"
                )));
            }
        };
        tracing::info!(pool = %req.pool_id, dir = %pool.dir.display(), created, "storage pool initialised");
        let disks = self.attachments().await?;
        pool_info(&req.pool_id, pool, &disks).await
    }

    /// GetStoragePoolInfo.
    pub(super) async fn get_pool(&self, id: &str) -> Result<pb::StoragePoolInfoResponse, ApiError> {
        let pool = self.inner.pools.get(id).ok_or_else(|| not_found(id))?;
        pool_info(id, pool, &self.attachments().await?).await
    }

    /// ListStoragePools.
    pub(super) async fn list_pools(&self) -> Result<pb::ListStoragePoolsResponse, ApiError> {
        // The VMs' disks are read once for every pool.
        let disks = self.attachments().await?;
        let mut pools = Vec::new();
        for (id, pool) in self.inner.pools.all() {
            pools.push(pool_info(&id, pool, &disks).await?);
        }
        Ok(pb::ListStoragePoolsResponse { pools })
    }

    /// DestroyStoragePool: forgets a pool made through the API (its directory goes when empty;
    /// a share the node mounted is unmounted). A pool holding a disk of a defined VM is
    /// refused, naming every such VM: they would lose their disks.
    pub(super) async fn destroy_pool(&self, id: &str) -> Result<(), ApiError> {
        let pool = self.inner.pools.get(id).ok_or_else(|| not_found(id))?;
        let mut users: Vec<String> = Vec::new();
        for a in self.attachments().await? {
            if a.file.starts_with(&pool.dir) {
                users.push(format!(
                    "{} ({}) disk {}",
                    a.vm_name, a.vm_id, a.api_disk_id
                ));
            }
        }
        if !users.is_empty() {
            return Err(ApiError::Precondition(format!(
                "storage pool {id:?} holds disks of defined VMs: {}; delete them (or their disks) first",
                users.join(", ")
            )));
        }
        if pool.origin == crate::pools::Origin::Config {
            return Err(ApiError::Precondition(format!(
                "storage pool {id:?}: {}",
                DestroyError::Configured
            )));
        }
        if pool.mounted_by_node {
            limiquantix_storage::nfs::unmount(&pool.dir, Path::new("umount"))
                .await
                .map_err(|e| ApiError::Precondition(format!("storage pool {id:?}: {e}")))?;
        }
        let inner = self.inner.clone();
        let owned = id.to_string();
        let removed = tokio::task::spawn_blocking(move || inner.pools.destroy(&owned))
            .await?
            .map_err(|e| match e {
                DestroyError::NotFound => not_found(id),
                DestroyError::Configured => {
                    ApiError::Precondition(format!("storage pool {id:?}: {e}"))
                }
                DestroyError::Pool(e) => pool_error(e),
            })?;
        tracing::info!(pool = %id, dir = %pool.dir.display(), dir_removed = removed, "storage pool destroyed");
        Ok(())
    }

    /// ListStoragePoolFiles: one directory level of a pool.
    pub(super) async fn pool_files(
        &self,
        req: pb::ListStoragePoolFilesRequest,
    ) -> Result<pb::ListStoragePoolFilesResponse, ApiError> {
        let pool = usable_pool(&self.inner, &req.pool_id).await?;
        tokio::task::spawn_blocking(move || list_dir(&pool.dir, &req.path)).await?
    }
}

/// The wire form of a pool: capacity, availability and the VMs with a disk among `disks` in it.
async fn pool_info(
    id: &str,
    pool: Pool,
    disks: &[Attachment],
) -> Result<pb::StoragePoolInfoResponse, ApiError> {
    let mut vm_ids: Vec<String> = disks
        .iter()
        .filter(|a| a.file.starts_with(&pool.dir))
        .map(|a| a.vm_id.clone())
        .collect();
    vm_ids.dedup();
    let p = pool.clone();
    let (available, usage) = tokio::task::spawn_blocking(move || {
        let available = availability(&p);
        let usage = available.is_ok().then(|| pool_usage(&p.dir)).flatten();
        (available, usage)
    })
    .await?;
    let usage = usage.unwrap_or_default();
    let capacity = pool.capacity_bytes.unwrap_or(usage.total);
    Ok(pb::StoragePoolInfoResponse {
        pool_id: id.to_string(),
        r#type: match pool.kind {
            PoolKind::LocalDir => pb::StoragePoolType::LocalDir,
            PoolKind::Nfs { .. } => pb::StoragePoolType::Nfs,
        } as i32,
        mount_path: pool.dir.display().to_string(),
        device_path: pool.kind.nfs_source().unwrap_or_default(),
        // A capped pool reports its cap: what its volumes may be promised, and what of it
        // is left (never more than the filesystem has free).
        total_bytes: capacity,
        available_bytes: match pool.capacity_bytes {
            Some(c) => usage.available.min(c.saturating_sub(usage.provisioned)),
            None => usage.available,
        },
        used_bytes: if pool.capacity_bytes.is_some() {
            usage.allocated
        } else {
            usage.used
        },
        volume_count: usage.volumes,
        unavailable_reason: available.err().unwrap_or_default(),
        vm_ids,
        capacity_limit_bytes: pool.capacity_bytes.unwrap_or(0),
        allocated_bytes: usage.allocated,
        provisioned_bytes: usage.provisioned,
        overcommit_ratio: if capacity == 0 {
            0.0
        } else {
            usage.provisioned as f64 / capacity as f64
        },
        mounted_by_node: pool.mounted_by_node,
        ..Default::default()
    })
}

/// Pool `id` when it exists and is usable now: NOT_FOUND for an unknown pool,
/// FAILED_PRECONDITION with the reason for one whose directory or share is gone.
pub(super) async fn usable_pool<B>(inner: &Inner<B>, id: &str) -> Result<Pool, ApiError> {
    let pool = inner.pools.get(id).ok_or_else(|| not_found(id))?;
    let p = pool.clone();
    tokio::task::spawn_blocking(move || availability(&p))
        .await?
        .map_err(|why| {
            ApiError::Precondition(format!("storage pool {id:?} is unavailable: {why}"))
        })?;
    Ok(pool)
}

/// NOT_FOUND for a pool, in the words the control plane looks for.
pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("storage pool {id:?} not found on this node"))
}

/// The API error of a registry error.
pub(super) fn pool_error(e: PoolError) -> ApiError {
    match e {
        PoolError::BadId(_) => ApiError::invalid("pool_id", e.to_string()),
        PoolError::Outside { .. } => ApiError::PermissionDenied(e.to_string()),
        PoolError::Conflict { .. } => ApiError::Precondition(e.to_string()),
        PoolError::Io { .. } => ApiError::Internal(e.to_string()),
    }
}

/// One level of `rel` (relative to the pool, no `..`) inside `pool_dir`; a symlink out of the
/// pool is refused.
fn list_dir(pool_dir: &Path, rel: &str) -> Result<pb::ListStoragePoolFilesResponse, ApiError> {
    let rel_path = Path::new(rel.trim_start_matches('/'));
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ApiError::invalid(
            "path",
            format!("{rel:?} is not a directory of the pool: give a relative path without `..`"),
        ));
    }
    let root = pool_dir.canonicalize().map_err(|e| {
        ApiError::Precondition(format!(
            "the pool's directory {} is unavailable: {e}",
            pool_dir.display()
        ))
    })?;
    let dir = root
        .join(rel_path)
        .canonicalize()
        .map_err(|_| ApiError::NotFound(format!("directory {rel:?} not found in the pool")))?;
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(ApiError::invalid(
            "path",
            format!("{rel:?} is not a directory of the pool"),
        ));
    }
    let mut entries = Vec::new();
    let read = std::fs::read_dir(&dir)
        .map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
    for e in read.flatten().take(MAX_ENTRIES) {
        if let Some(entry) = file_entry(&root, &e.path()) {
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| (!a.is_directory, &a.name).cmp(&(!b.is_directory, &b.name)));
    Ok(pb::ListStoragePoolFilesResponse {
        entries,
        current_path: rel_path.display().to_string(),
    })
}

/// The entry of one file or directory (symlinks are followed only inside the pool).
fn file_entry(root: &Path, path: &Path) -> Option<pb::StoragePoolFileEntry> {
    use std::os::unix::fs::PermissionsExt as _;
    let real: PathBuf = path.canonicalize().ok().filter(|p| p.starts_with(root))?;
    let meta = std::fs::metadata(&real).ok()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let is_directory = meta.is_dir();
    let file_type = if is_directory {
        "directory".to_string()
    } else {
        detect(&real)
    };
    Some(pb::StoragePoolFileEntry {
        path: path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string(),
        name,
        is_directory,
        size_bytes: if is_directory { 0 } else { meta.len() },
        modified_at: meta.modified().map(super::vm::rfc3339).unwrap_or_default(),
        file_type,
        permissions: format!("{:o}", meta.permissions().mode() & 0o7777),
    })
}

/// A file's type from its first bytes: `qcow2`, `iso`, `raw`, `vmdk`, `xz`, ...
fn detect(path: &Path) -> String {
    let mut head = Vec::with_capacity(HEADER_LEN);
    let read =
        std::fs::File::open(path).and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut head));
    match read {
        Ok(_) => magic::detect(&head).as_str().to_string(),
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_one_level_typed_by_content_and_confined() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = tmp.path().join("pool");
        std::fs::create_dir_all(pool.join("iso")).unwrap();
        let mut iso = vec![0u8; HEADER_LEN];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        std::fs::write(pool.join("iso/debian.iso"), &iso).unwrap();
        std::fs::write(pool.join("disk.img"), b"QFI\xfb\0\0\0\x03").unwrap();
        std::fs::write(tmp.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), pool.join("escape")).unwrap();

        let top = list_dir(&pool, "").unwrap();
        let names: Vec<_> = top
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.file_type.as_str()))
            .collect();
        assert_eq!(
            names,
            [("iso", "directory"), ("disk.img", "qcow2")],
            "the symlink out is left out"
        );
        let isos = list_dir(&pool, "iso").unwrap();
        assert_eq!(isos.entries[0].path, "iso/debian.iso");
        assert_eq!(isos.entries[0].file_type, "iso");
        assert!(list_dir(&pool, "../").is_err());
        assert!(list_dir(&pool, "missing").is_err());
    }
}
