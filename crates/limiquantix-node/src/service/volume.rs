//! The volumes of the node API: ListVolumes, CreateVolume (empty, overlay on an image, full
//! copy of a volume or of one of its snapshots), DeleteVolume, ResizeVolume (live through the
//! VM when attached to one), CloneVolume, GetVolumeAttachInfo and CreateVolumeSnapshot.
//!
//! A volume is `<pool>/<volume id>.qcow2` (`.img` for a raw disk); the file work is the
//! storage crate's ([`limiquantix_storage::volume`]). Room is checked before anything is
//! written: a volume must fit in the filesystem's free space, and a pool's cap bounds what its
//! volumes are promised (RESOURCE_EXHAUSTED otherwise).

use super::core::NodeService;
use super::storage::usable_pool;
use crate::error::ApiError;
use crate::pools::Pool;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::{self as vol, VolumeId, VolumeInfo};
use limiquantix_vm::VmBackend;
use limiquantix_vm::model::DiskFormat;
use std::path::{Path, PathBuf};

/// A disk of a defined VM, by its file.
#[derive(Debug, Clone)]
pub(super) struct Attachment {
    /// The disk's file.
    pub(super) file: PathBuf,
    /// The VM's id.
    pub(super) vm_id: String,
    /// The VM's name.
    pub(super) vm_name: String,
    /// The disk's device id.
    pub(super) disk_id: String,
    /// The disk's id in the API (the caller's, or the device id).
    pub(super) api_disk_id: String,
    /// Whether a QEMU process runs the VM now.
    pub(super) active: bool,
}

impl<B: VmBackend> NodeService<B> {
    /// Every disk of every defined VM.
    pub(super) async fn attachments(&self) -> Result<Vec<Attachment>, ApiError> {
        let mut out = Vec::new();
        for e in self.inner.backend.list().await? {
            let def = &e.definition;
            for (disk, file) in def.disks.iter().zip(&e.disk_files) {
                out.push(Attachment {
                    file: file.clone(),
                    vm_id: def.id.to_string(),
                    vm_name: def.name.clone(),
                    disk_id: disk.id.clone(),
                    api_disk_id: def.api_id(&disk.id).to_string(),
                    active: e.status.state.is_active(),
                });
            }
        }
        Ok(out)
    }

    /// ListVolumes.
    pub(super) async fn list_volumes(
        &self,
        pool_id: &str,
    ) -> Result<pb::ListVolumesResponse, ApiError> {
        let pool = usable_pool(&self.inner, pool_id).await?;
        let attached = self.attachments().await?;
        let dir = pool.dir.clone();
        let volumes = tokio::task::spawn_blocking(move || vol::list_volumes(&dir)).await??;
        Ok(pb::ListVolumesResponse {
            volumes: volumes
                .iter()
                .map(|v| volume_response(pool_id, v, &attached))
                .collect(),
        })
    }

    /// CreateVolume.
    pub(super) async fn create_volume(
        &self,
        req: pb::CreateVolumeRequest,
    ) -> Result<pb::VolumeInfoResponse, ApiError> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let pool = usable_pool(&self.inner, &req.pool_id).await?;
        if let Some(existing) = find(&pool, &id).await? {
            return Err(ApiError::Storage(
                limiquantix_storage::StorageError::AlreadyExists { path: existing },
            ));
        }
        if !req.size_bytes.is_multiple_of(512) {
            return Err(ApiError::invalid(
                "size_bytes",
                format!("{} is not a multiple of 512", req.size_bytes),
            ));
        }
        let dst = vol::volume_file(&pool.dir, &id, DiskFormat::Qcow2);
        let qemu_img = self.inner.config.qemu_img.clone();
        let kind = pb::VolumeSourceType::try_from(req.source_type).map_err(|_| {
            ApiError::invalid(
                "source_type",
                format!(
                    "{} is not a source: 0 EMPTY, 1 CLONE, 2 IMAGE, 3 SNAPSHOT",
                    req.source_type
                ),
            )
        })?;
        match kind {
            pb::VolumeSourceType::VolumeSourceEmpty => {
                if req.size_bytes == 0 {
                    return Err(ApiError::invalid(
                        "size_bytes",
                        "an empty volume needs a size (bytes, a multiple of 512)",
                    ));
                }
                check_room(&req.pool_id, &pool, req.size_bytes, 0).await?;
                limiquantix_storage::create_blank(
                    &qemu_img,
                    &dst,
                    DiskFormat::Qcow2,
                    req.size_bytes,
                )
                .await?;
            }
            pb::VolumeSourceType::VolumeSourceImage => {
                let backing = self.image_source(&req.source_id).await?;
                let size = source_size(&backing).await?.max(req.size_bytes);
                check_room(&req.pool_id, &pool, size, 0).await?;
                limiquantix_storage::create_overlay(&qemu_img, &backing, &dst, size).await?;
            }
            pb::VolumeSourceType::VolumeSourceClone
            | pb::VolumeSourceType::VolumeSourceSnapshot => {
                self.copy_volume(&req, &pool, &dst).await?;
            }
        }
        tracing::info!(pool = %req.pool_id, volume = %id, source = kind.as_str_name(), "volume created");
        let info = read(dst).await?;
        Ok(volume_response(
            &req.pool_id,
            &info,
            &self.attachments().await?,
        ))
    }

    /// A full copy of a volume (CLONE) or of a snapshot of one (SNAPSHOT, `<volume>@<snapshot>`).
    async fn copy_volume(
        &self,
        req: &pb::CreateVolumeRequest,
        pool: &Pool,
        dst: &Path,
    ) -> Result<(), ApiError> {
        let snapshot_kind = req.source_type == pb::VolumeSourceType::VolumeSourceSnapshot as i32;
        let (volume, snapshot) = match req.source_id.split_once('@') {
            Some((v, s)) if snapshot_kind => (v, Some(s)),
            None if !snapshot_kind => (req.source_id.as_str(), None),
            _ if snapshot_kind => {
                return Err(ApiError::invalid(
                    "source_id",
                    "a snapshot source is <volume>@<snapshot>",
                ));
            }
            _ => {
                return Err(ApiError::invalid(
                    "source_id",
                    "a clone source is a volume id of the same pool",
                ));
            }
        };
        let src_id = VolumeId::parse("source_id", volume)?;
        if let Some(s) = snapshot {
            vol::check_volume_name("source_id", s)?;
        }
        let src = find(pool, &src_id)
            .await?
            .ok_or_else(|| volume_not_found(&req.pool_id, &src_id))?;
        self.refuse_active(&src, "copied").await?;
        let info = read(src.clone()).await?;
        if let Some(s) = snapshot.filter(|s| !info.snapshots.iter().any(|n| n == s)) {
            return Err(ApiError::NotFound(format!(
                "snapshot {s:?} not found on volume {src_id}"
            )));
        }
        let size = info.virtual_size.max(req.size_bytes);
        check_room(&req.pool_id, pool, size, info.allocated).await?;
        let source = vol::CopySource {
            path: src,
            snapshot: snapshot.map(str::to_owned),
        };
        let mut next = 10.0;
        let (pool_id, dst_name) = (req.pool_id.clone(), req.volume_id.clone());
        vol::copy_to_qcow2(&self.inner.config.qemu_img, &source, dst, Some(size), move |p| {
            if p >= next {
                tracing::info!(pool = %pool_id, volume = %dst_name, percent = p.floor(), "copying volume");
                next = (p / 10.0).floor() * 10.0 + 10.0;
            }
        })
        .await?;
        Ok(())
    }

    /// The file of an IMAGE source: a library image by name, or an absolute path inside the
    /// images directory or a pool.
    async fn image_source(&self, source: &str) -> Result<PathBuf, ApiError> {
        let inner = self.inner.clone();
        let source = source.to_string();
        tokio::task::spawn_blocking(move || {
            if source.is_empty() {
                return Err(ApiError::invalid(
                    "source_id",
                    "name the image: a library image or an absolute path",
                ));
            }
            let path = if source.starts_with('/') {
                source
            } else {
                inner.config.images_dir.join(&source).display().to_string()
            };
            Ok(inner.confinement().check("source_id", &path)?)
        })
        .await?
    }

    /// Refuses when the file is a disk of a VM that runs now (`what` the volume would be).
    async fn refuse_active(&self, file: &Path, what: &str) -> Result<(), ApiError> {
        if let Some(a) = self
            .attachments()
            .await?
            .into_iter()
            .find(|a| a.file == file && a.active)
        {
            return Err(ApiError::Precondition(format!(
                "volume {} is a disk of VM {} ({}), which is running: it cannot be {what} while in use; stop the VM first",
                file.display(),
                a.vm_name,
                a.vm_id
            )));
        }
        Ok(())
    }

    /// DeleteVolume: refused for a disk of any defined VM.
    pub(super) async fn delete_volume(&self, req: pb::VolumeIdRequest) -> Result<(), ApiError> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let pool = usable_pool(&self.inner, &req.pool_id).await?;
        let file = find(&pool, &id)
            .await?
            .ok_or_else(|| volume_not_found(&req.pool_id, &id))?;
        if let Some(a) = self
            .attachments()
            .await?
            .into_iter()
            .find(|a| a.file == file)
        {
            return Err(ApiError::Precondition(format!(
                "volume {id} is disk {} of VM {} ({}); detach it or delete the VM first",
                a.api_disk_id, a.vm_name, a.vm_id
            )));
        }
        let f = file.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::remove_file(&f)?;
            limiquantix_fs::sync_dir(f.parent().unwrap_or(Path::new("/"))).map_err(|e| e.source)
        })
        .await?
        .map_err(|e| ApiError::Internal(format!("{}: {e}", file.display())))?;
        tracing::info!(pool = %req.pool_id, volume = %id, "volume deleted");
        Ok(())
    }

    /// CreateVolumeSnapshot: a qcow2 internal snapshot of a volume no running VM uses.
    pub(super) async fn snapshot_volume(
        &self,
        req: pb::CreateVolumeSnapshotRequest,
    ) -> Result<(), ApiError> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let pool = usable_pool(&self.inner, &req.pool_id).await?;
        let file = find(&pool, &id)
            .await?
            .ok_or_else(|| volume_not_found(&req.pool_id, &id))?;
        self.refuse_active(
            &file,
            "snapshotted with qemu-img (use the VM's CreateSnapshot)",
        )
        .await?;
        vol::create_snapshot(&self.inner.config.qemu_img, &file, &req.snapshot_id).await?;
        tracing::info!(pool = %req.pool_id, volume = %id, snapshot = %req.snapshot_id, "volume snapshot taken");
        Ok(())
    }

    /// GetVolumeAttachInfo: the volume's path and its `-blockdev` JSON.
    pub(super) async fn attach_info(
        &self,
        req: pb::VolumeIdRequest,
    ) -> Result<pb::VolumeAttachInfoResponse, ApiError> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let pool = usable_pool(&self.inner, &req.pool_id).await?;
        let file = find(&pool, &id)
            .await?
            .ok_or_else(|| volume_not_found(&req.pool_id, &id))?;
        let info = read(file.clone()).await?;
        let node: String = format!("v-{}", id.as_str()).chars().take(31).collect();
        Ok(pb::VolumeAttachInfoResponse {
            volume_id: id.to_string(),
            path: file.display().to_string(),
            disk_xml: vol::blockdev_json(&file, info.format, &node),
        })
    }
}

/// The file of volume `id` in `pool`, if it exists.
pub(super) async fn find(pool: &Pool, id: &VolumeId) -> Result<Option<PathBuf>, ApiError> {
    let (dir, id) = (pool.dir.clone(), id.clone());
    Ok(tokio::task::spawn_blocking(move || vol::find_volume(&dir, &id)).await?)
}

async fn read(file: PathBuf) -> Result<VolumeInfo, ApiError> {
    Ok(tokio::task::spawn_blocking(move || vol::read_volume(&file)).await??)
}

async fn source_size(path: &Path) -> Result<u64, ApiError> {
    let p = path.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        limiquantix_storage::detect_format(&p).map(|d| d.virtual_size())
    })
    .await??)
}

/// NOT_FOUND for a volume.
pub(super) fn volume_not_found(pool_id: &str, id: &VolumeId) -> ApiError {
    ApiError::NotFound(format!("volume {id} not found in storage pool {pool_id:?}"))
}

/// Refuses, with RESOURCE_EXHAUSTED and nothing written, a volume that would promise
/// `promise` more bytes (its virtual size, or a growth) or write `write` bytes now beyond the
/// filesystem's free space or the pool's cap.
pub(super) async fn check_room(
    pool_id: &str,
    pool: &Pool,
    promise: u64,
    write: u64,
) -> Result<(), ApiError> {
    let dir = pool.dir.clone();
    let usage = tokio::task::spawn_blocking(move || vol::pool_usage(&dir))
        .await?
        .ok_or_else(|| {
            ApiError::Precondition(format!(
                "storage pool {pool_id:?}: its directory cannot be read"
            ))
        })?;
    let need = promise.max(write);
    if need > usage.available {
        return Err(ApiError::Exhausted(format!(
            "storage pool {pool_id:?}: {need} bytes do not fit in the {} bytes free on its filesystem",
            usage.available
        )));
    }
    if let Some(cap) = pool
        .capacity_bytes
        .filter(|cap| usage.provisioned.saturating_add(promise) > *cap)
    {
        return Err(ApiError::Exhausted(format!(
            "storage pool {pool_id:?}: its volumes are promised {} bytes of its {cap}-byte cap; \
             {promise} more would exceed it",
            usage.provisioned
        )));
    }
    Ok(())
}

/// The wire form of a volume.
fn volume_response(
    pool_id: &str,
    v: &VolumeInfo,
    attached: &[super::volume::Attachment],
) -> pb::VolumeInfoResponse {
    pb::VolumeInfoResponse {
        volume_id: v.id.clone(),
        pool_id: pool_id.to_string(),
        size_bytes: v.virtual_size,
        format: v.format.qemu_name().to_string(),
        path: v.path.display().to_string(),
        attached_to: attached
            .iter()
            .find(|a| a.file == v.path)
            .map(|a| a.vm_id.clone())
            .unwrap_or_default(),
        allocated_bytes: v.allocated,
        backing_file: v
            .backing_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        snapshot_ids: v.snapshots.clone(),
    }
}
