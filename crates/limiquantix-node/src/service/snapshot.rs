//! CreateSnapshot, ListSnapshots, RevertSnapshot, DeleteSnapshot over the backend's snapshot
//! methods. Snapshot ids are the backend's (`snap-<n>`); events (SNAPSHOT_CREATED, _REVERTED,
//! _DELETED) come from the backend.

use super::core::NodeService;
use crate::error::ApiError;
use crate::translate::{parse_vm_id, power_state};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::{SnapshotInfo, SnapshotRequest, VmBackend};

impl<B: VmBackend> NodeService<B> {
    /// CreateSnapshot.
    pub(super) async fn snapshot_create(
        &self,
        req: pb::CreateSnapshotRequest,
    ) -> Result<pb::SnapshotResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        tracing::info!(vm_id = %id, name = %req.name, disk_only = req.disk_only, quiesce = req.quiesce, "snapshot requested");
        let request = SnapshotRequest {
            name: req.name,
            description: req.description,
            quiesce: req.quiesce,
            disk_only: req.disk_only,
        };
        let info = self.inner.backend.create_snapshot(&id, request).await?;
        tracing::info!(vm_id = %id, snapshot = %info.id, memory = info.memory, "snapshot taken");
        Ok(wire_snapshot(info))
    }

    /// ListSnapshots.
    pub(super) async fn snapshot_list(
        &self,
        vm_id: &str,
    ) -> Result<pb::ListSnapshotsResponse, ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        let list = self.inner.backend.list_snapshots(&id).await?;
        Ok(pb::ListSnapshotsResponse {
            snapshots: list.into_iter().map(wire_snapshot).collect(),
        })
    }

    /// RevertSnapshot.
    pub(super) async fn snapshot_revert(
        &self,
        req: pb::RevertSnapshotRequest,
    ) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        check_snapshot_id(&req.snapshot_id)?;
        tracing::info!(vm_id = %id, snapshot = %req.snapshot_id, stop_if_running = req.stop_if_running, "revert requested");
        let backend = &self.inner.backend;
        backend
            .revert_snapshot(&id, &req.snapshot_id, req.stop_if_running)
            .await?;
        Ok(())
    }

    /// DeleteSnapshot.
    pub(super) async fn snapshot_delete(
        &self,
        req: pb::DeleteSnapshotRequest,
    ) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        check_snapshot_id(&req.snapshot_id)?;
        tracing::info!(vm_id = %id, snapshot = %req.snapshot_id, "snapshot deletion requested");
        self.inner
            .backend
            .delete_snapshot(&id, &req.snapshot_id)
            .await?;
        Ok(())
    }
}

/// An empty snapshot id is INVALID_ARGUMENT (an unknown one is the backend's NOT_FOUND).
fn check_snapshot_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::invalid(
            "snapshot_id",
            "is empty: give the id ListSnapshots shows (snap-<n>)",
        ));
    }
    Ok(())
}

/// The wire form of a snapshot.
pub(super) fn wire_snapshot(s: SnapshotInfo) -> pb::SnapshotResponse {
    pb::SnapshotResponse {
        snapshot_id: s.id,
        name: s.name,
        description: s.description,
        created_at: Some(prost_types::Timestamp::from(s.created_at)),
        vm_state: power_state(s.vm_state) as i32,
        parent_id: s.parent_id.unwrap_or_default(),
        current: s.current,
        memory: s.memory,
    }
}
