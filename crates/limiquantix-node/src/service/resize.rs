//! ResizeVolume: grows a pool volume, or a VM's disk named by its id, never shrinks. A volume
//! that is a disk of a VM is grown through the backend (live through QEMU when the VM runs, so
//! the guest sees the new size at once); a free volume with `qemu-img resize`.
//!
//! The LimiQuantix control plane sends `pool_id: "default"` and the disk's id (its UUID) as
//! `volume_id`; when that names no volume of a pool, the disk of a VM with that id is resized.

use super::core::NodeService;
use super::storage::usable_pool;
use super::volume::{Attachment, check_room, find};
use crate::error::ApiError;
use crate::pools::Pool;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::{self as vol, VolumeId};
use limiquantix_vm::VmBackend;
use std::path::PathBuf;

impl<B: VmBackend> NodeService<B> {
    /// ResizeVolume.
    pub(super) async fn resize_volume(&self, req: pb::ResizeVolumeRequest) -> Result<(), ApiError> {
        let new = req.new_size_bytes;
        if new == 0 || !new.is_multiple_of(512) {
            return Err(ApiError::invalid(
                "new_size_bytes",
                format!("{new} is not a positive multiple of 512"),
            ));
        }
        // The VMs' disks are read once: to resolve a disk id and to find the file's VM.
        let attachments = self.attachments().await?;
        let (file, pool) = self.resize_target(&req, &attachments).await?;
        let attached: Option<Attachment> = attachments.into_iter().find(|a| a.file == file);
        let f = file.clone();
        let current = tokio::task::spawn_blocking(move || vol::read_volume(&f))
            .await??
            .virtual_size;
        if let Some((pool_id, pool)) = pool.as_ref().filter(|_| new > current) {
            check_room(pool_id, pool, new - current, 0).await?;
        }
        let before = match &attached {
            Some(a) => {
                tracing::debug!(vm_id = %a.vm_id, disk = %a.disk_id, "growing a VM's disk through the backend");
                let vm = a
                    .vm_id
                    .parse()
                    .map_err(|_| ApiError::Internal(format!("bad VM id {}", a.vm_id)))?;
                self.inner.backend.resize_disk(&vm, &a.disk_id, new).await?
            }
            None => vol::resize_image(&self.inner.config.qemu_img, &file, new).await?,
        };
        tracing::info!(
            vm_id = attached.as_ref().map(|a| a.vm_id.as_str()).unwrap_or(""),
            volume = %req.volume_id,
            from = before,
            to = new,
            live = attached.as_ref().is_some_and(|a| a.active),
            "volume resized"
        );
        Ok(())
    }

    /// The file ResizeVolume grows, and its pool when it is in one: volume `volume_id` of pool
    /// `pool_id`, else the disk of a VM (of `attachments`) whose id is `volume_id`.
    async fn resize_target(
        &self,
        req: &pb::ResizeVolumeRequest,
        attachments: &[Attachment],
    ) -> Result<(PathBuf, Option<(String, Pool)>), ApiError> {
        if let (Some(pool), Ok(id)) = (
            self.inner.pools.get(&req.pool_id),
            VolumeId::parse("volume_id", &req.volume_id),
        ) {
            let pool = usable_pool(&self.inner, &req.pool_id).await.map(|_| pool)?;
            if let Some(file) = find(&pool, &id).await? {
                return Ok((file, Some((req.pool_id.clone(), pool))));
            }
        }
        let disks: Vec<&Attachment> = attachments
            .iter()
            .filter(|a| a.api_disk_id == req.volume_id)
            .collect();
        match disks.as_slice() {
            [one] => {
                let pool = self
                    .inner
                    .pools
                    .all()
                    .into_iter()
                    .find(|(_, p)| one.file.starts_with(&p.dir));
                Ok((one.file.clone(), pool))
            }
            [] => Err(ApiError::NotFound(format!(
                "volume {:?} not found: no volume of storage pool {:?} and no VM disk has that id",
                req.volume_id, req.pool_id
            ))),
            many => Err(ApiError::invalid(
                "volume_id",
                format!(
                    "{:?} names disks of several VMs ({}); name the volume by its pool instead",
                    req.volume_id,
                    many.iter()
                        .map(|a| a.vm_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}
