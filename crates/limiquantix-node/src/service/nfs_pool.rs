//! NFS pools: InitStoragePool of type NFS mounts `server:export` at the pool's mount point
//! (under a pool root) with the system's `mount`, or adopts a mount of exactly that share
//! already there; a mount of anything else is refused and left alone. The node unmounts on
//! DestroyStoragePool only a share it mounted itself. At start, a share the node had mounted
//! and that is gone is mounted again.

use super::core::NodeService;
use super::storage::pool_error;
use crate::error::ApiError;
use crate::pools::{Origin, Pool, PoolKind, availability};
use limiquantix_proto::v1 as pb;
use limiquantix_storage::nfs::{MountOutcome, NfsError, NfsSpec, ensure_mounted, unmount};
use limiquantix_vm::VmBackend;
use std::path::Path;

/// The system's mount tools (util-linux; `mount -t nfs` runs `mount.nfs`).
const MOUNT: &str = "mount";
/// See [`MOUNT`].
const UMOUNT: &str = "umount";

impl<B: VmBackend> NodeService<B> {
    /// InitStoragePool for an NFS pool.
    pub(super) async fn init_nfs(
        &self,
        id: &str,
        cfg: pb::NfsPoolConfig,
    ) -> Result<(Pool, bool), ApiError> {
        let pools = &self.inner.pools;
        let dir = pools
            .place(id, "config.nfs.mount_point", &cfg.mount_point)
            .map_err(pool_error)?;
        let spec = NfsSpec::new(
            &cfg.server,
            &cfg.export_path,
            &cfg.version,
            &cfg.options,
            &dir,
        )
        .map_err(nfs_invalid)?;
        let mut want = Pool {
            dir,
            origin: Origin::Api,
            kind: PoolKind::Nfs {
                server: spec.server().to_string(),
                export_path: cfg.export_path,
                version: cfg.version,
                options: cfg.options,
            },
            capacity_bytes: None,
            mounted_by_node: false,
        };
        if let Some(existing) = pools.same_or_conflict(id, &want).map_err(pool_error)? {
            // The same pool again: mount its share again if it went away.
            mount(&spec).await?;
            return Ok((existing, false));
        }
        want.mounted_by_node = mount(&spec).await? == MountOutcome::Mounted;
        let (inner, owned, w) = (self.inner.clone(), id.to_string(), want.clone());
        match tokio::task::spawn_blocking(move || inner.pools.insert(&owned, w)).await? {
            Ok(done) => Ok(done),
            Err(e) => {
                if want.mounted_by_node {
                    let _ = unmount(&want.dir, Path::new(UMOUNT)).await;
                }
                Err(pool_error(e))
            }
        }
    }

    /// Mounts again, at start, the shares of NFS pools the node had mounted and that are gone;
    /// a failure leaves the pool reported unavailable with the reason.
    pub async fn remount_pools(&self) {
        for (id, pool) in self.inner.pools.all() {
            let PoolKind::Nfs {
                server,
                export_path,
                version,
                options,
            } = &pool.kind
            else {
                continue;
            };
            let p = pool.clone();
            let up = tokio::task::spawn_blocking(move || availability(&p).is_ok())
                .await
                .unwrap_or(false);
            if up || !pool.mounted_by_node {
                continue;
            }
            let spec = NfsSpec::new(server, export_path, version, options, &pool.dir);
            match spec.map_err(nfs_invalid) {
                Ok(spec) => match mount(&spec).await {
                    Ok(_) => tracing::info!(pool = %id, "NFS share mounted again"),
                    Err(e) => tracing::warn!(pool = %id, error = %e, "NFS pool stays unavailable"),
                },
                Err(e) => {
                    tracing::warn!(pool = %id, error = %e, "NFS pool spec is no longer valid")
                }
            }
        }
    }
}

/// Mounts or adopts the share.
async fn mount(spec: &NfsSpec) -> Result<MountOutcome, ApiError> {
    ensure_mounted(spec, Path::new(MOUNT))
        .await
        .map_err(|e| match e {
            NfsError::WrongMount { .. } => ApiError::Precondition(e.to_string()),
            other => ApiError::Precondition(format!("the NFS share cannot be mounted: {other}")),
        })
}

/// The API error of an invalid NFS spec (the message names the field).
fn nfs_invalid(e: NfsError) -> ApiError {
    match e {
        NfsError::Invalid {
            field,
            problem,
            allowed,
        } => ApiError::invalid(field, format!("{problem}; {allowed}")),
        other => ApiError::invalid("config.nfs", other.to_string()),
    }
}
