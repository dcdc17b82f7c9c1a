//! `limiquantix.node.v1.NodeDaemonService` over a [`VmBackend`].
//!
//! One module per group of RPCs: [`node`] (HealthCheck, GetNodeInfo), [`create`] (CreateVM),
//! [`vm`] (lifecycle, status, console, logs, media), [`agent`] (the guest agents' answers in
//! status), [`guest`] (the guest-agent RPCs: exec, files, shutdown, fsfreeze, time), [`hotplug`] (disk and NIC attach and detach), [`events`] (StreamEvents), [`metrics`] (StreamMetrics), [`storage`] and [`nfs_pool`] (storage pools), [`volume`] and [`resize`] (volumes), [`snapshot`] (VM snapshots), [`download`] (DownloadImage,
//! GetDownloadStatus, CancelDownload), [`network`] (GetOVSStatus and the network ports). The RPCs
//! this daemon does not implement answer UNIMPLEMENTED with what they wait for ([`pending`]).
//! Handlers return [`ApiError`]; [`crate::error`] turns it into the gRPC status.

mod agent;
mod agent_cache;
mod build;
mod core;
mod create;
mod download;
mod events;
mod guest;
mod hotplug;
mod media;
mod metrics;
mod migration;
mod migration_out;
mod network;
mod nfs_pool;
mod node;
mod pending;
mod resize;
mod snapshot;
mod storage;
mod vm;
mod volume;

use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::node_daemon_service_server::NodeDaemonService;
use limiquantix_vm::VmBackend;
use limiquantix_vm::VmOp;
use tonic::{Request, Response, Status};

use self::core::BoxStream;
pub use self::core::{Hypervisor, NodeService};
pub use create::request_digest;

fn reply<T>(r: Result<T, ApiError>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl<B: VmBackend> NodeDaemonService for NodeService<B> {
    async fn health_check(
        &self,
        _: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        reply(Ok(self.health()))
    }

    async fn get_node_info(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        reply(self.node_info().await)
    }

    async fn create_vm(
        &self,
        request: Request<pb::CreateVmOnNodeRequest>,
    ) -> Result<Response<pb::CreateVmOnNodeResponse>, Status> {
        reply(self.create(request.into_inner()).await)
    }

    async fn start_vm(&self, request: Request<pb::VmIdRequest>) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::Start, 0)
                .await,
        )
    }

    async fn stop_vm(&self, request: Request<pb::StopVmRequest>) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        reply(
            self.lifecycle(&r.vm_id, VmOp::Stop, r.timeout_seconds)
                .await,
        )
    }

    async fn force_stop_vm(
        &self,
        request: Request<pb::VmIdRequest>,
    ) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::ForceStop, 0)
                .await,
        )
    }

    async fn reboot_vm(&self, request: Request<pb::VmIdRequest>) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::Reboot, 0)
                .await,
        )
    }

    async fn pause_vm(&self, request: Request<pb::VmIdRequest>) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::Pause, 0)
                .await,
        )
    }

    async fn resume_vm(&self, request: Request<pb::VmIdRequest>) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::Resume, 0)
                .await,
        )
    }

    async fn delete_vm(&self, request: Request<pb::VmIdRequest>) -> Result<Response<()>, Status> {
        reply(
            self.lifecycle(&request.into_inner().vm_id, VmOp::Delete, 0)
                .await,
        )
    }

    async fn get_vm_status(
        &self,
        request: Request<pb::VmIdRequest>,
    ) -> Result<Response<pb::VmStatusResponse>, Status> {
        reply(self.status(&request.into_inner().vm_id).await)
    }

    async fn list_v_ms(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListVMsOnNodeResponse>, Status> {
        reply(self.list().await)
    }

    async fn get_console(
        &self,
        request: Request<pb::VmIdRequest>,
    ) -> Result<Response<pb::ConsoleInfoResponse>, Status> {
        reply(self.console(&request.into_inner().vm_id).await)
    }

    async fn get_vm_logs(
        &self,
        request: Request<pb::GetVmLogsRequest>,
    ) -> Result<Response<pb::GetVmLogsResponse>, Status> {
        reply(self.logs(request.into_inner()).await)
    }

    async fn change_media(
        &self,
        request: Request<pb::ChangeMediaRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.media(request.into_inner()).await)
    }

    type StreamEventsStream = BoxStream<pb::NodeEvent>;

    async fn stream_events(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        reply(Ok(self.event_stream()))
    }

    async fn create_snapshot(
        &self,
        request: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        reply(self.snapshot_create(request.into_inner()).await)
    }

    async fn revert_snapshot(
        &self,
        request: Request<pb::RevertSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.snapshot_revert(request.into_inner()).await)
    }

    async fn delete_snapshot(
        &self,
        request: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.snapshot_delete(request.into_inner()).await)
    }

    async fn list_snapshots(
        &self,
        request: Request<pb::VmIdRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        reply(self.snapshot_list(&request.into_inner().vm_id).await)
    }

    async fn attach_disk(&self, r: Request<pb::AttachDiskRequest>) -> Result<Response<()>, Status> {
        reply(self.disk_attach(r.into_inner()).await)
    }

    async fn detach_disk(&self, r: Request<pb::DetachDiskRequest>) -> Result<Response<()>, Status> {
        reply(self.disk_detach(r.into_inner()).await)
    }

    async fn attach_nic(&self, r: Request<pb::AttachNicRequest>) -> Result<Response<()>, Status> {
        reply(self.nic_attach(r.into_inner()).await)
    }

    async fn detach_nic(&self, r: Request<pb::DetachNicRequest>) -> Result<Response<()>, Status> {
        reply(self.nic_detach(r.into_inner()).await)
    }

    async fn prepare_migration(
        &self,
        request: Request<pb::PrepareMigrationRequest>,
    ) -> Result<Response<pb::MigrationToken>, Status> {
        reply(self.migration_prepare(request.into_inner()).await)
    }

    async fn receive_migration(
        &self,
        request: Request<pb::MigrationToken>,
    ) -> Result<Response<()>, Status> {
        reply(self.migration_receive(request.into_inner()).await)
    }

    type MigrateVMStream = BoxStream<pb::MigrationProgress>;

    async fn migrate_vm(
        &self,
        request: Request<pb::MigrateVmRequest>,
    ) -> Result<Response<Self::MigrateVMStream>, Status> {
        reply(self.migration_start(request.into_inner()).await)
    }

    type StreamMetricsStream = BoxStream<pb::NodeMetrics>;

    async fn stream_metrics(
        &self,
        request: Request<pb::StreamMetricsRequest>,
    ) -> Result<Response<Self::StreamMetricsStream>, Status> {
        reply(Ok(
            self.metrics_stream(request.into_inner().interval_seconds)
        ))
    }

    async fn ping_agent(
        &self,
        request: Request<pb::VmIdRequest>,
    ) -> Result<Response<pb::AgentPingResponse>, Status> {
        reply(self.agent_ping(&request.into_inner().vm_id).await)
    }

    async fn execute_in_guest(
        &self,
        request: Request<pb::ExecuteInGuestRequest>,
    ) -> Result<Response<pb::ExecuteInGuestResponse>, Status> {
        reply(self.guest_exec(request.into_inner()).await)
    }

    async fn read_guest_file(
        &self,
        request: Request<pb::ReadGuestFileRequest>,
    ) -> Result<Response<pb::ReadGuestFileResponse>, Status> {
        reply(self.guest_read(request.into_inner()).await)
    }

    async fn write_guest_file(
        &self,
        request: Request<pb::WriteGuestFileRequest>,
    ) -> Result<Response<pb::WriteGuestFileResponse>, Status> {
        reply(self.guest_write(request.into_inner()).await)
    }

    async fn guest_shutdown(
        &self,
        request: Request<pb::GuestShutdownRequest>,
    ) -> Result<Response<pb::GuestShutdownResponse>, Status> {
        reply(self.shut_guest_down(request.into_inner()).await)
    }

    async fn quiesce_filesystems(
        &self,
        request: Request<pb::QuiesceFilesystemsRequest>,
    ) -> Result<Response<pb::QuiesceFilesystemsResponse>, Status> {
        reply(self.guest_freeze(request.into_inner()).await)
    }

    async fn thaw_filesystems(
        &self,
        request: Request<pb::ThawFilesystemsRequest>,
    ) -> Result<Response<pb::ThawFilesystemsResponse>, Status> {
        reply(self.guest_thaw(request.into_inner()).await)
    }

    async fn sync_time(
        &self,
        request: Request<pb::SyncTimeRequest>,
    ) -> Result<Response<pb::SyncTimeResponse>, Status> {
        reply(self.guest_sync_time(request.into_inner()).await)
    }

    async fn init_storage_pool(
        &self,
        request: Request<pb::InitStoragePoolRequest>,
    ) -> Result<Response<pb::StoragePoolInfoResponse>, Status> {
        reply(self.init_pool(request.into_inner()).await)
    }

    async fn destroy_storage_pool(
        &self,
        request: Request<pb::StoragePoolIdRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.destroy_pool(&request.into_inner().pool_id).await)
    }

    async fn get_storage_pool_info(
        &self,
        request: Request<pb::StoragePoolIdRequest>,
    ) -> Result<Response<pb::StoragePoolInfoResponse>, Status> {
        reply(self.get_pool(&request.into_inner().pool_id).await)
    }

    async fn list_storage_pools(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListStoragePoolsResponse>, Status> {
        reply(self.list_pools().await)
    }

    async fn list_storage_pool_files(
        &self,
        request: Request<pb::ListStoragePoolFilesRequest>,
    ) -> Result<Response<pb::ListStoragePoolFilesResponse>, Status> {
        reply(self.pool_files(request.into_inner()).await)
    }

    async fn list_volumes(
        &self,
        request: Request<pb::ListVolumesRequest>,
    ) -> Result<Response<pb::ListVolumesResponse>, Status> {
        reply(self.list_volumes(&request.into_inner().pool_id).await)
    }

    async fn create_volume(
        &self,
        request: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::VolumeInfoResponse>, Status> {
        reply(self.create_volume(request.into_inner()).await)
    }

    async fn delete_volume(
        &self,
        request: Request<pb::VolumeIdRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.delete_volume(request.into_inner()).await)
    }

    async fn list_images(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        crate::image_service::list_images(&self.inner.config.images_dir)
            .await
            .map(Response::new)
    }

    async fn resize_volume(
        &self,
        request: Request<pb::ResizeVolumeRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.resize_volume(request.into_inner()).await)
    }

    async fn clone_volume(
        &self,
        request: Request<pb::CloneVolumeRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let req = pb::CreateVolumeRequest {
            pool_id: r.pool_id,
            volume_id: r.dest_volume_id,
            size_bytes: 0,
            source_type: pb::VolumeSourceType::VolumeSourceClone as i32,
            source_id: r.source_volume_id,
        };
        reply(self.create_volume(req).await.map(|_| ()))
    }

    async fn get_volume_attach_info(
        &self,
        request: Request<pb::VolumeIdRequest>,
    ) -> Result<Response<pb::VolumeAttachInfoResponse>, Status> {
        reply(self.attach_info(request.into_inner()).await)
    }

    async fn create_volume_snapshot(
        &self,
        request: Request<pb::CreateVolumeSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.snapshot_volume(request.into_inner()).await)
    }

    type DownloadImageStream = BoxStream<pb::DownloadProgress>;

    async fn download_image(
        &self,
        request: Request<pb::DownloadImageOnNodeRequest>,
    ) -> Result<Response<Self::DownloadImageStream>, Status> {
        reply(self.download_image(request.into_inner()).await)
    }

    async fn get_download_status(
        &self,
        request: Request<pb::GetDownloadStatusRequest>,
    ) -> Result<Response<pb::DownloadProgress>, Status> {
        reply(self.download_status(&request.into_inner().job_id))
    }

    async fn cancel_download(
        &self,
        request: Request<pb::CancelDownloadRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.cancel_download(&request.into_inner().job_id).await)
    }

    async fn get_ovs_status(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::OvsStatusResponse>, Status> {
        reply(self.ovs_status().await)
    }

    async fn configure_network_port(
        &self,
        _: Request<pb::ConfigureNetworkPortRequest>,
    ) -> Result<Response<pb::NetworkPortInfo>, Status> {
        reply(self.network_port("ConfigureNetworkPort").await)
    }

    async fn delete_network_port(
        &self,
        _: Request<pb::DeleteNetworkPortRequest>,
    ) -> Result<Response<()>, Status> {
        reply(self.network_port("DeleteNetworkPort").await)
    }

    async fn get_network_port_status(
        &self,
        _: Request<pb::GetNetworkPortStatusRequest>,
    ) -> Result<Response<pb::NetworkPortInfo>, Status> {
        reply(self.network_port("GetNetworkPortStatus").await)
    }

    async fn list_network_ports(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListNetworkPortsResponse>, Status> {
        reply(self.network_port("ListNetworkPorts").await)
    }
}

#[cfg(test)]
mod tests;
