//! Wire compatibility with the two upstream forks of `limiquantix.node.v1`.
//!
//! The tables below were written down by reading, in the upstream repository
//! `Galev01/LimiQuantix` at commit `ceea64f3877c7a9efb684a2510ff28038731bdc0` (its HEAD of
//! 2026-01-31), the control plane's `proto/limiquantix/node/v1/node_daemon.proto` (last changed
//! in `577beeedde75`) and the node agent's `agent/limiquantix-proto/proto/node_daemon.proto`
//! (last changed in `eb616cf3d7f3`). They hold every method, every (message, field, number,
//! type) and every enum value of both files; each must be present, unchanged, in our
//! descriptor, so a missing method or field, a renumbering or a retyping breaks this test.
//!
//! Where the forks disagree the control plane's facts are listed (our resolution) and the
//! node-fork facts that clash are left out, documented in the `.proto`: `NodeInfoResponse`
//! 4–8, `VMStatusResponse` 4–7, `ConsoleInfoResponse.console_type`, `NodeMetrics.vms` at 5,
//! `EventType` values 7–13. One disagreement is resolved the node fork's way: `CreateVolume`
//! answers `VolumeInfoResponse` (the control plane's fork says `google.protobuf.Empty`, which
//! decodes any message).

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use std::collections::BTreeMap;

/// `Message field number type`; type is a scalar, `repeated T`, `map<K,V>` or a message/enum
/// name (`Message.Enum` for a nested enum).
const FIELDS: &str = "
HealthCheckResponse healthy 1 bool
HealthCheckResponse version 2 string
HealthCheckResponse hypervisor 3 string
HealthCheckResponse hypervisor_version 4 string
HealthCheckResponse uptime_seconds 5 uint64
VMIdRequest vm_id 1 string
CreateVMOnNodeRequest vm_id 1 string
CreateVMOnNodeRequest name 2 string
CreateVMOnNodeRequest spec 3 VMSpec
CreateVMOnNodeRequest labels 4 map<string,string>
VMSpec cpu_cores 1 uint32
VMSpec cpu_sockets 2 uint32
VMSpec cpu_threads_per_core 3 uint32
VMSpec memory_mib 4 uint64
VMSpec memory_hugepages 5 bool
VMSpec firmware 6 Firmware
VMSpec boot_order 7 repeated BootDevice
VMSpec disks 8 repeated DiskSpec
VMSpec nics 9 repeated NicSpec
VMSpec cdroms 10 repeated CdromSpec
VMSpec console 11 ConsoleSpec
VMSpec cloud_init 12 CloudInitConfig
VMSpec guest_os 13 string
CloudInitConfig user_data 1 string
CloudInitConfig meta_data 2 string
CloudInitConfig network_config 3 string
CloudInitConfig vendor_data 4 string
DiskSpec id 1 string
DiskSpec path 2 string
DiskSpec size_gib 3 uint64
DiskSpec bus 4 DiskBus
DiskSpec format 5 DiskFormat
DiskSpec readonly 6 bool
DiskSpec bootable 7 bool
DiskSpec iops_limit 8 uint64
DiskSpec throughput_mbps 9 uint64
DiskSpec backing_file 10 string
DiskSpec pool_id 11 string
NicSpec id 1 string
NicSpec mac_address 2 string
NicSpec bridge 3 string
NicSpec network 4 string
NicSpec model 5 NicModel
NicSpec bandwidth_mbps 6 uint64
CdromSpec id 1 string
CdromSpec iso_path 2 string
CdromSpec bootable 3 bool
ConsoleSpec vnc_enabled 1 bool
ConsoleSpec vnc_port 2 uint32
ConsoleSpec vnc_password 3 string
ConsoleSpec spice_enabled 4 bool
ConsoleSpec spice_port 5 uint32
CreateVMOnNodeResponse vm_id 1 string
CreateVMOnNodeResponse created 2 bool
CreateVMOnNodeResponse message 3 string
StopVMRequest vm_id 1 string
StopVMRequest timeout_seconds 2 uint32
ListVMsOnNodeResponse vms 1 repeated VMStatusResponse
CreateSnapshotRequest vm_id 1 string
CreateSnapshotRequest name 2 string
CreateSnapshotRequest description 3 string
CreateSnapshotRequest quiesce 4 bool
CreateSnapshotRequest disk_only 5 bool
SnapshotResponse snapshot_id 1 string
SnapshotResponse name 2 string
SnapshotResponse description 3 string
SnapshotResponse created_at 4 google.protobuf.Timestamp
SnapshotResponse vm_state 5 PowerState
SnapshotResponse parent_id 6 string
RevertSnapshotRequest vm_id 1 string
RevertSnapshotRequest snapshot_id 2 string
DeleteSnapshotRequest vm_id 1 string
DeleteSnapshotRequest snapshot_id 2 string
ListSnapshotsResponse snapshots 1 repeated SnapshotResponse
AttachNICRequest vm_id 1 string
AttachNICRequest nic 2 NicSpec
DetachNICRequest vm_id 1 string
DetachNICRequest nic_id 2 string
StreamMetricsRequest interval_seconds 1 uint32
VMMetrics vm_id 1 string
VMMetrics name 2 string
VMMetrics cpu_usage_percent 3 double
VMMetrics memory_used_bytes 4 uint64
VMMetrics disk_read_bytes 5 uint64
VMMetrics disk_write_bytes 6 uint64
VMMetrics network_rx_bytes 7 uint64
VMMetrics network_tx_bytes 8 uint64
NodeEvent id 1 string
NodeEvent timestamp 2 google.protobuf.Timestamp
NodeEvent type 3 EventType
NodeEvent vm_id 4 string
NodeEvent message 5 string
NodeEvent metadata 6 map<string,string>
NodeInfoResponse node_id 1 string
NodeInfoResponse hostname 2 string
NodeInfoResponse management_ip 3 string
NodeInfoResponse cpu 4 CpuInfo
NodeInfoResponse memory 5 MemoryInfo
NodeInfoResponse storage 6 repeated StorageInfo
NodeInfoResponse network 7 repeated NetworkInfo
NodeInfoResponse capabilities 8 HypervisorCapabilities
NodeInfoResponse os_version 9 string
NodeInfoResponse kernel_version 10 string
NodeInfoResponse uptime_seconds 11 uint64
NodeInfoResponse hypervisor_name 12 string
NodeInfoResponse hypervisor_version 13 string
NodeInfoResponse supports_live_migration 14 bool
NodeInfoResponse supports_snapshots 15 bool
NodeInfoResponse supports_hotplug 16 bool
NodeInfoResponse max_vcpus 17 uint32
NodeInfoResponse max_memory_bytes 18 uint64
CpuInfo model 1 string
CpuInfo sockets 2 uint32
CpuInfo cores_per_socket 3 uint32
CpuInfo threads_per_core 4 uint32
CpuInfo total_threads 5 uint32
CpuInfo frequency_mhz 6 uint64
CpuInfo features 7 repeated string
MemoryInfo total_bytes 1 uint64
MemoryInfo available_bytes 2 uint64
MemoryInfo used_bytes 3 uint64
StorageInfo device 1 string
StorageInfo mount_point 2 string
StorageInfo total_bytes 3 uint64
StorageInfo used_bytes 4 uint64
StorageInfo available_bytes 5 uint64
StorageInfo filesystem 6 string
NetworkInfo name 1 string
NetworkInfo mac_address 2 string
NetworkInfo ip_addresses 3 repeated string
NetworkInfo speed_mbps 4 uint64
NetworkInfo up 5 bool
HypervisorCapabilities name 1 string
HypervisorCapabilities version 2 string
HypervisorCapabilities supports_live_migration 3 bool
HypervisorCapabilities supports_snapshots 4 bool
HypervisorCapabilities supports_hotplug 5 bool
HypervisorCapabilities supports_gpu_passthrough 6 bool
HypervisorCapabilities supports_nested_virtualization 7 bool
HypervisorCapabilities max_vcpus 8 uint32
HypervisorCapabilities max_memory_bytes 9 uint64
VMStatusResponse vm_id 1 string
VMStatusResponse name 2 string
VMStatusResponse state 3 PowerState
VMStatusResponse resource_usage 4 ResourceUsage
VMStatusResponse started_at 5 google.protobuf.Timestamp
VMStatusResponse guest_agent 8 GuestAgentInfo
VMStatusResponse disks 9 repeated DiskSpec
ResourceUsage cpu_usage_percent 1 double
ResourceUsage cpu_time_ns 2 uint64
ResourceUsage memory_used_bytes 3 uint64
ResourceUsage memory_total_bytes 4 uint64
ResourceUsage disk_read_bytes 5 uint64
ResourceUsage disk_write_bytes 6 uint64
ResourceUsage network_rx_bytes 7 uint64
ResourceUsage network_tx_bytes 8 uint64
ConsoleInfoResponse type 1 string
ConsoleInfoResponse host 2 string
ConsoleInfoResponse port 3 uint32
ConsoleInfoResponse password 4 string
ConsoleInfoResponse websocket_path 5 string
NodeMetrics timestamp 1 google.protobuf.Timestamp
NodeMetrics cpu_usage_percent 2 double
NodeMetrics memory_used_bytes 3 uint64
NodeMetrics memory_total_bytes 4 uint64
NodeMetrics disks 5 repeated DiskMetrics
NodeMetrics networks 6 repeated NetworkMetrics
NodeMetrics vms 7 repeated VMMetrics
DiskMetrics device 1 string
DiskMetrics read_bytes 2 uint64
DiskMetrics write_bytes 3 uint64
DiskMetrics read_iops 4 uint64
DiskMetrics write_iops 5 uint64
DiskMetrics utilization_percent 6 double
NetworkMetrics interface 1 string
NetworkMetrics rx_bytes 2 uint64
NetworkMetrics tx_bytes 3 uint64
NetworkMetrics rx_packets 4 uint64
NetworkMetrics tx_packets 5 uint64
NetworkMetrics rx_errors 6 uint64
NetworkMetrics tx_errors 7 uint64
AttachDiskRequest vm_id 1 string
AttachDiskRequest disk 2 DiskSpec
DetachDiskRequest vm_id 1 string
DetachDiskRequest disk_id 2 string
PrepareMigrationRequest vm_id 1 string
PrepareMigrationRequest source_node_uri 2 string
MigrationToken token 1 string
MigrationToken vm_id 2 string
MigrationToken expires_at 3 google.protobuf.Timestamp
MigrateVMRequest vm_id 1 string
MigrateVMRequest target_node_uri 2 string
MigrateVMRequest live 3 bool
MigrateVMRequest storage 4 bool
MigrationProgress vm_id 1 string
MigrationProgress percent_complete 2 uint32
MigrationProgress data_transferred_bytes 3 uint64
MigrationProgress data_remaining_bytes 4 uint64
MigrationProgress phase 5 MigrationPhase
MigrationProgress error 6 string
GuestAgentInfo connected 1 bool
GuestAgentInfo version 2 string
GuestAgentInfo os_name 3 string
GuestAgentInfo os_version 4 string
GuestAgentInfo kernel_version 5 string
GuestAgentInfo hostname 6 string
GuestAgentInfo ip_addresses 7 repeated string
GuestAgentInfo interfaces 8 repeated GuestNetworkInterface
GuestAgentInfo resource_usage 9 GuestResourceUsage
GuestAgentInfo capabilities 10 repeated string
GuestAgentInfo last_seen 11 google.protobuf.Timestamp
GuestNetworkInterface name 1 string
GuestNetworkInterface mac_address 2 string
GuestNetworkInterface ipv4_addresses 3 repeated string
GuestNetworkInterface ipv6_addresses 4 repeated string
GuestNetworkInterface is_up 5 bool
GuestResourceUsage cpu_usage_percent 1 double
GuestResourceUsage memory_total_bytes 2 uint64
GuestResourceUsage memory_used_bytes 3 uint64
GuestResourceUsage memory_available_bytes 4 uint64
GuestResourceUsage swap_total_bytes 5 uint64
GuestResourceUsage swap_used_bytes 6 uint64
GuestResourceUsage load_avg_1 7 double
GuestResourceUsage load_avg_5 8 double
GuestResourceUsage load_avg_15 9 double
GuestResourceUsage disks 10 repeated GuestDiskUsage
GuestResourceUsage process_count 11 uint32
GuestResourceUsage uptime_seconds 12 uint64
GuestDiskUsage mount_point 1 string
GuestDiskUsage device 2 string
GuestDiskUsage filesystem 3 string
GuestDiskUsage total_bytes 4 uint64
GuestDiskUsage used_bytes 5 uint64
GuestDiskUsage available_bytes 6 uint64
GuestDiskUsage usage_percent 7 double
GetVMLogsRequest vm_id 1 string
GetVMLogsRequest lines 2 uint32
GetVMLogsResponse vm_id 1 string
GetVMLogsResponse vm_name 2 string
GetVMLogsResponse qemu_log 3 string
GetVMLogsResponse log_path 4 string
GetVMLogsResponse log_size_bytes 5 uint64
GetVMLogsResponse lines_returned 6 uint32
GetVMLogsResponse truncated 7 bool
GetVMLogsResponse last_modified 8 string
AgentPingResponse connected 1 bool
AgentPingResponse version 2 string
AgentPingResponse uptime_seconds 3 uint64
AgentPingResponse error 4 string
ExecuteInGuestRequest vm_id 1 string
ExecuteInGuestRequest command 2 string
ExecuteInGuestRequest args 3 repeated string
ExecuteInGuestRequest timeout_seconds 4 uint32
ExecuteInGuestRequest wait_for_exit 5 bool
ExecuteInGuestRequest working_directory 6 string
ExecuteInGuestRequest environment 7 map<string,string>
ExecuteInGuestResponse success 1 bool
ExecuteInGuestResponse exit_code 2 int32
ExecuteInGuestResponse stdout 3 string
ExecuteInGuestResponse stderr 4 string
ExecuteInGuestResponse timed_out 5 bool
ExecuteInGuestResponse duration_ms 6 uint64
ExecuteInGuestResponse error 7 string
ReadGuestFileRequest vm_id 1 string
ReadGuestFileRequest path 2 string
ReadGuestFileRequest offset 3 uint64
ReadGuestFileRequest max_size 4 uint64
ReadGuestFileResponse success 1 bool
ReadGuestFileResponse data 2 bytes
ReadGuestFileResponse total_size 3 uint64
ReadGuestFileResponse eof 4 bool
ReadGuestFileResponse error 5 string
WriteGuestFileRequest vm_id 1 string
WriteGuestFileRequest path 2 string
WriteGuestFileRequest data 3 bytes
WriteGuestFileRequest mode 4 uint32
WriteGuestFileRequest create_parents 5 bool
WriteGuestFileResponse success 1 bool
WriteGuestFileResponse bytes_written 2 uint64
WriteGuestFileResponse error 3 string
GuestShutdownRequest vm_id 1 string
GuestShutdownRequest reboot 2 bool
GuestShutdownRequest delay_seconds 3 uint32
GuestShutdownRequest message 4 string
GuestShutdownResponse accepted 1 bool
GuestShutdownResponse error 2 string
QuiesceFilesystemsRequest vm_id 1 string
QuiesceFilesystemsRequest mount_points 2 repeated string
QuiesceFilesystemsRequest timeout_seconds 3 uint32
QuiesceFilesystemsRequest run_pre_freeze_scripts 4 bool
QuiesceFilesystemsResponse success 1 bool
QuiesceFilesystemsResponse frozen 2 repeated FrozenFilesystem
QuiesceFilesystemsResponse error 3 string
QuiesceFilesystemsResponse quiesce_token 4 string
FrozenFilesystem mount_point 1 string
FrozenFilesystem device 2 string
FrozenFilesystem filesystem 3 string
FrozenFilesystem frozen 4 bool
FrozenFilesystem error 5 string
ThawFilesystemsRequest vm_id 1 string
ThawFilesystemsRequest quiesce_token 2 string
ThawFilesystemsRequest mount_points 3 repeated string
ThawFilesystemsRequest run_post_thaw_scripts 4 bool
ThawFilesystemsResponse success 1 bool
ThawFilesystemsResponse thawed_mount_points 2 repeated string
ThawFilesystemsResponse error 3 string
ThawFilesystemsResponse frozen_duration_ms 4 uint64
SyncTimeRequest vm_id 1 string
SyncTimeRequest force 2 bool
SyncTimeResponse success 1 bool
SyncTimeResponse offset_seconds 2 double
SyncTimeResponse time_source 3 string
SyncTimeResponse error 4 string
InitStoragePoolRequest pool_id 1 string
InitStoragePoolRequest type 2 StoragePoolType
InitStoragePoolRequest config 3 StoragePoolConfig
StoragePoolConfig local 1 LocalDirPoolConfig
StoragePoolConfig nfs 2 NfsPoolConfig
StoragePoolConfig ceph 3 CephPoolConfig
StoragePoolConfig iscsi 4 IscsiPoolConfig
LocalDirPoolConfig path 1 string
LocalDirPoolConfig capacity_gib 2 uint64
NfsPoolConfig server 1 string
NfsPoolConfig export_path 2 string
NfsPoolConfig version 3 string
NfsPoolConfig options 4 string
NfsPoolConfig mount_point 5 string
CephPoolConfig cluster_id 1 string
CephPoolConfig pool_name 2 string
CephPoolConfig monitors 3 repeated string
CephPoolConfig user 4 string
CephPoolConfig keyring_path 5 string
CephPoolConfig namespace 6 string
CephPoolConfig secret_uuid 7 string
IscsiPoolConfig portal 1 string
IscsiPoolConfig target 2 string
IscsiPoolConfig chap_enabled 3 bool
IscsiPoolConfig chap_user 4 string
IscsiPoolConfig chap_password 5 string
IscsiPoolConfig lun 6 uint32
IscsiPoolConfig volume_group 7 string
StoragePoolIdRequest pool_id 1 string
StoragePoolInfoResponse pool_id 1 string
StoragePoolInfoResponse type 2 StoragePoolType
StoragePoolInfoResponse mount_path 3 string
StoragePoolInfoResponse device_path 4 string
StoragePoolInfoResponse rbd_pool 5 string
StoragePoolInfoResponse total_bytes 6 uint64
StoragePoolInfoResponse available_bytes 7 uint64
StoragePoolInfoResponse used_bytes 8 uint64
StoragePoolInfoResponse volume_count 9 uint32
ListStoragePoolsResponse pools 1 repeated StoragePoolInfoResponse
ListStoragePoolFilesRequest pool_id 1 string
ListStoragePoolFilesRequest path 2 string
ListStoragePoolFilesResponse entries 1 repeated StoragePoolFileEntry
ListStoragePoolFilesResponse current_path 2 string
StoragePoolFileEntry name 1 string
StoragePoolFileEntry path 2 string
StoragePoolFileEntry is_directory 3 bool
StoragePoolFileEntry size_bytes 4 uint64
StoragePoolFileEntry modified_at 5 string
StoragePoolFileEntry file_type 6 string
StoragePoolFileEntry permissions 7 string
VolumeIdRequest pool_id 1 string
VolumeIdRequest volume_id 2 string
CreateVolumeRequest pool_id 1 string
CreateVolumeRequest volume_id 2 string
CreateVolumeRequest size_bytes 3 uint64
CreateVolumeRequest source_type 4 VolumeSourceType
CreateVolumeRequest source_id 5 string
ResizeVolumeRequest pool_id 1 string
ResizeVolumeRequest volume_id 2 string
ResizeVolumeRequest new_size_bytes 3 uint64
CloneVolumeRequest pool_id 1 string
CloneVolumeRequest source_volume_id 2 string
CloneVolumeRequest dest_volume_id 3 string
VolumeAttachInfoResponse volume_id 1 string
VolumeAttachInfoResponse path 2 string
VolumeAttachInfoResponse disk_xml 3 string
CreateVolumeSnapshotRequest pool_id 1 string
CreateVolumeSnapshotRequest volume_id 2 string
CreateVolumeSnapshotRequest snapshot_id 3 string
ListVolumesRequest pool_id 1 string
VolumeInfoResponse volume_id 1 string
VolumeInfoResponse pool_id 2 string
VolumeInfoResponse size_bytes 3 uint64
VolumeInfoResponse format 4 string
VolumeInfoResponse path 5 string
VolumeInfoResponse attached_to 6 string
ListVolumesResponse volumes 1 repeated VolumeInfoResponse
ImageInfo image_id 1 string
ImageInfo name 2 string
ImageInfo path 3 string
ImageInfo size_bytes 4 uint64
ImageInfo format 5 string
ListImagesResponse images 1 repeated ImageInfo
ChangeMediaRequest vm_id 1 string
ChangeMediaRequest device 2 string
ChangeMediaRequest iso_path 3 string
DownloadImageOnNodeRequest job_id 1 string
DownloadImageOnNodeRequest image_id 2 string
DownloadImageOnNodeRequest url 3 string
DownloadImageOnNodeRequest target_dir 4 string
DownloadImageOnNodeRequest filename 5 string
DownloadImageOnNodeRequest checksum 6 string
DownloadImageOnNodeRequest checksum_type 7 string
DownloadProgress job_id 1 string
DownloadProgress image_id 2 string
DownloadProgress status 3 DownloadProgress.Status
DownloadProgress progress_percent 4 uint32
DownloadProgress bytes_downloaded 5 uint64
DownloadProgress bytes_total 6 uint64
DownloadProgress download_speed 7 uint64
DownloadProgress eta_seconds 8 uint32
DownloadProgress path 9 string
DownloadProgress error 10 string
GetDownloadStatusRequest job_id 1 string
CancelDownloadRequest job_id 1 string
OVSStatusResponse available 1 bool
OVSStatusResponse ovs_version 2 string
OVSStatusResponse ovn_controller_connected 3 bool
OVSStatusResponse integration_bridge 4 string
OVSStatusResponse encap_type 5 string
OVSStatusResponse encap_ip 6 string
OVSStatusResponse chassis_id 7 string
ConfigureNetworkPortRequest port_id 1 string
ConfigureNetworkPortRequest vm_id 2 string
ConfigureNetworkPortRequest network_id 3 string
ConfigureNetworkPortRequest mac_address 4 string
ConfigureNetworkPortRequest ip_addresses 5 repeated string
ConfigureNetworkPortRequest ovn_port_name 6 string
ConfigureNetworkPortRequest binding_type 7 NetworkPortBindingType
ConfigureNetworkPortRequest qos 8 NetworkPortQoS
ConfigureNetworkPortRequest port_security_enabled 9 bool
ConfigureNetworkPortRequest security_group_ids 10 repeated string
NetworkPortQoS ingress_rate_kbps 1 uint64
NetworkPortQoS egress_rate_kbps 2 uint64
NetworkPortQoS ingress_burst_kb 3 uint64
NetworkPortQoS egress_burst_kb 4 uint64
NetworkPortInfo port_id 1 string
NetworkPortInfo vm_id 2 string
NetworkPortInfo network_id 3 string
NetworkPortInfo mac_address 4 string
NetworkPortInfo ip_addresses 5 repeated string
NetworkPortInfo phase 6 NetworkPortPhase
NetworkPortInfo error_message 7 string
NetworkPortInfo ovs_port_name 8 string
NetworkPortInfo ovn_port_name 9 string
NetworkPortInfo interface_xml 10 string
NetworkPortInfo rx_bytes 11 uint64
NetworkPortInfo tx_bytes 12 uint64
NetworkPortInfo rx_packets 13 uint64
NetworkPortInfo tx_packets 14 uint64
DeleteNetworkPortRequest port_id 1 string
DeleteNetworkPortRequest vm_id 2 string
GetNetworkPortStatusRequest port_id 1 string
ListNetworkPortsResponse ports 1 repeated NetworkPortInfo
";

/// `Enum VALUE number`; a nested enum is named `Message.Enum`.
const ENUM_VALUES: &str = "
Firmware FIRMWARE_BIOS 0
Firmware FIRMWARE_UEFI 1
BootDevice BOOT_DEVICE_DISK 0
BootDevice BOOT_DEVICE_CDROM 1
BootDevice BOOT_DEVICE_NETWORK 2
DiskBus DISK_BUS_VIRTIO 0
DiskBus DISK_BUS_SCSI 1
DiskBus DISK_BUS_SATA 2
DiskBus DISK_BUS_IDE 3
DiskFormat DISK_FORMAT_QCOW2 0
DiskFormat DISK_FORMAT_RAW 1
NicModel NIC_MODEL_VIRTIO 0
NicModel NIC_MODEL_E1000 1
NicModel NIC_MODEL_RTL8139 2
PowerState POWER_STATE_UNKNOWN 0
PowerState POWER_STATE_RUNNING 1
PowerState POWER_STATE_STOPPED 2
PowerState POWER_STATE_PAUSED 3
PowerState POWER_STATE_SUSPENDED 4
PowerState POWER_STATE_CRASHED 5
EventType EVENT_TYPE_UNKNOWN 0
EventType EVENT_TYPE_VM_STARTED 1
EventType EVENT_TYPE_VM_STOPPED 2
EventType EVENT_TYPE_VM_PAUSED 3
EventType EVENT_TYPE_VM_RESUMED 4
EventType EVENT_TYPE_VM_CRASHED 5
EventType EVENT_TYPE_VM_REBOOTED 6
EventType EVENT_TYPE_VM_MIGRATED_OUT 7
EventType EVENT_TYPE_VM_MIGRATED_IN 8
EventType EVENT_TYPE_SNAPSHOT_CREATED 9
EventType EVENT_TYPE_SNAPSHOT_REVERTED 10
EventType EVENT_TYPE_SNAPSHOT_DELETED 11
EventType EVENT_TYPE_DISK_ATTACHED 12
EventType EVENT_TYPE_DISK_DETACHED 13
EventType EVENT_TYPE_NIC_ATTACHED 14
EventType EVENT_TYPE_NIC_DETACHED 15
EventType EVENT_TYPE_NODE_OVERLOADED 16
EventType EVENT_TYPE_NODE_RECOVERED 17
EventType EVENT_TYPE_AGENT_CONNECTED 18
EventType EVENT_TYPE_AGENT_DISCONNECTED 19
MigrationPhase MIGRATION_PHASE_PREPARING 0
MigrationPhase MIGRATION_PHASE_TRANSFERRING 1
MigrationPhase MIGRATION_PHASE_SWITCHING 2
MigrationPhase MIGRATION_PHASE_COMPLETE 3
MigrationPhase MIGRATION_PHASE_FAILED 4
StoragePoolType STORAGE_POOL_TYPE_UNSPECIFIED 0
StoragePoolType STORAGE_POOL_TYPE_LOCAL_DIR 1
StoragePoolType STORAGE_POOL_TYPE_LOCAL_LVM 2
StoragePoolType STORAGE_POOL_TYPE_NFS 3
StoragePoolType STORAGE_POOL_TYPE_CEPH_RBD 4
StoragePoolType STORAGE_POOL_TYPE_CEPH_FS 5
StoragePoolType STORAGE_POOL_TYPE_ISCSI 6
VolumeSourceType VOLUME_SOURCE_EMPTY 0
VolumeSourceType VOLUME_SOURCE_CLONE 1
VolumeSourceType VOLUME_SOURCE_IMAGE 2
VolumeSourceType VOLUME_SOURCE_SNAPSHOT 3
DownloadProgress.Status STATUS_UNKNOWN 0
DownloadProgress.Status STATUS_PENDING 1
DownloadProgress.Status STATUS_DOWNLOADING 2
DownloadProgress.Status STATUS_VERIFYING 3
DownloadProgress.Status STATUS_CONVERTING 4
DownloadProgress.Status STATUS_COMPLETED 5
DownloadProgress.Status STATUS_FAILED 6
DownloadProgress.Status STATUS_CANCELLED 7
NetworkPortBindingType NETWORK_PORT_BINDING_NORMAL 0
NetworkPortBindingType NETWORK_PORT_BINDING_DIRECT 1
NetworkPortBindingType NETWORK_PORT_BINDING_MACVTAP 2
NetworkPortBindingType NETWORK_PORT_BINDING_VHOST_USER 3
NetworkPortPhase NETWORK_PORT_PHASE_UNKNOWN 0
NetworkPortPhase NETWORK_PORT_PHASE_PENDING 1
NetworkPortPhase NETWORK_PORT_PHASE_BUILDING 2
NetworkPortPhase NETWORK_PORT_PHASE_ACTIVE 3
NetworkPortPhase NETWORK_PORT_PHASE_DOWN 4
NetworkPortPhase NETWORK_PORT_PHASE_ERROR 5
";

/// `Method Input Output`; `stream` before a type marks a stream. `Empty` is google.protobuf.Empty.
const METHODS: &str = "
HealthCheck HealthCheckRequest HealthCheckResponse
GetNodeInfo Empty NodeInfoResponse
CreateVM CreateVMOnNodeRequest CreateVMOnNodeResponse
StartVM VMIdRequest Empty
StopVM StopVMRequest Empty
ForceStopVM VMIdRequest Empty
RebootVM VMIdRequest Empty
PauseVM VMIdRequest Empty
ResumeVM VMIdRequest Empty
DeleteVM VMIdRequest Empty
GetVMStatus VMIdRequest VMStatusResponse
ListVMs Empty ListVMsOnNodeResponse
GetConsole VMIdRequest ConsoleInfoResponse
CreateSnapshot CreateSnapshotRequest SnapshotResponse
RevertSnapshot RevertSnapshotRequest Empty
DeleteSnapshot DeleteSnapshotRequest Empty
ListSnapshots VMIdRequest ListSnapshotsResponse
AttachNIC AttachNICRequest Empty
DetachNIC DetachNICRequest Empty
StreamMetrics StreamMetricsRequest stream NodeMetrics
StreamEvents Empty stream NodeEvent
AttachDisk AttachDiskRequest Empty
DetachDisk DetachDiskRequest Empty
PrepareMigration PrepareMigrationRequest MigrationToken
ReceiveMigration MigrationToken Empty
MigrateVM MigrateVMRequest stream MigrationProgress
GetVMLogs GetVMLogsRequest GetVMLogsResponse
PingAgent VMIdRequest AgentPingResponse
ExecuteInGuest ExecuteInGuestRequest ExecuteInGuestResponse
ReadGuestFile ReadGuestFileRequest ReadGuestFileResponse
WriteGuestFile WriteGuestFileRequest WriteGuestFileResponse
GuestShutdown GuestShutdownRequest GuestShutdownResponse
QuiesceFilesystems QuiesceFilesystemsRequest QuiesceFilesystemsResponse
ThawFilesystems ThawFilesystemsRequest ThawFilesystemsResponse
SyncTime SyncTimeRequest SyncTimeResponse
InitStoragePool InitStoragePoolRequest StoragePoolInfoResponse
DestroyStoragePool StoragePoolIdRequest Empty
GetStoragePoolInfo StoragePoolIdRequest StoragePoolInfoResponse
ListStoragePools Empty ListStoragePoolsResponse
ListStoragePoolFiles ListStoragePoolFilesRequest ListStoragePoolFilesResponse
ListVolumes ListVolumesRequest ListVolumesResponse
CreateVolume CreateVolumeRequest VolumeInfoResponse
DeleteVolume VolumeIdRequest Empty
ListImages Empty ListImagesResponse
ResizeVolume ResizeVolumeRequest Empty
CloneVolume CloneVolumeRequest Empty
GetVolumeAttachInfo VolumeIdRequest VolumeAttachInfoResponse
CreateVolumeSnapshot CreateVolumeSnapshotRequest Empty
ChangeMedia ChangeMediaRequest Empty
DownloadImage DownloadImageOnNodeRequest stream DownloadProgress
GetDownloadStatus GetDownloadStatusRequest DownloadProgress
CancelDownload CancelDownloadRequest Empty
GetOVSStatus Empty OVSStatusResponse
ConfigureNetworkPort ConfigureNetworkPortRequest NetworkPortInfo
DeleteNetworkPort DeleteNetworkPortRequest Empty
GetNetworkPortStatus GetNetworkPortStatusRequest NetworkPortInfo
ListNetworkPorts Empty ListNetworkPortsResponse
";

const PACKAGE: &str = "limiquantix.node.v1";

fn our_file() -> prost_types::FileDescriptorProto {
    let set = FileDescriptorSet::decode(limiquantix_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .find(|f| f.name() == "limiquantix/node/v1/node_daemon.proto" && f.package() == PACKAGE)
        .expect("the descriptor set holds node_daemon.proto of package limiquantix.node.v1")
}

fn qualified(name: &str) -> String {
    match name {
        "Empty" => ".google.protobuf.Empty".into(),
        n if n.starts_with("google.") => format!(".{n}"),
        n => format!(".{PACKAGE}.{n}"),
    }
}

fn scalar(name: &str) -> Option<Type> {
    Some(match name {
        "string" => Type::String,
        "bool" => Type::Bool,
        "uint32" => Type::Uint32,
        "uint64" => Type::Uint64,
        "int32" => Type::Int32,
        "double" => Type::Double,
        "bytes" => Type::Bytes,
        _ => return None,
    })
}

/// Every enum of the file by name: top-level ones as `Enum`, nested ones as `Message.Enum`.
fn enums(file: &prost_types::FileDescriptorProto) -> BTreeMap<String, &EnumDescriptorProto> {
    let top = file.enum_type.iter().map(|e| (e.name().to_string(), e));
    let nested = file.message_type.iter().flat_map(|m| {
        m.enum_type
            .iter()
            .map(move |e| (format!("{}.{}", m.name(), e.name()), e))
    });
    top.chain(nested).collect()
}

fn messages(file: &prost_types::FileDescriptorProto) -> BTreeMap<String, &DescriptorProto> {
    file.message_type
        .iter()
        .map(|m| (m.name().to_string(), m))
        .collect()
}

#[test]
fn every_upstream_field_keeps_its_number_and_type() {
    let file = our_file();
    let enums = enums(&file);
    let msgs = messages(&file);
    let mut failures = Vec::new();
    for line in FIELDS.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        let [msg, field, number, ty] = parts[..] else {
            panic!("bad table line {line:?}")
        };
        let number: i32 = number.parse().unwrap();
        let Some(m) = msgs.get(msg) else {
            failures.push(format!("message {msg} is missing"));
            continue;
        };
        let Some(f) = m.field.iter().find(|f| f.name() == field) else {
            failures.push(format!("{msg}.{field} is missing"));
            continue;
        };
        if f.number() != number {
            failures.push(format!("{msg}.{field} is {} not {number}", f.number()));
        }
        let (repeated, base) = match ty.strip_prefix("repeated ") {
            Some(b) => (true, b),
            None => (ty.starts_with("map<"), ty),
        };
        if repeated != (f.label() == Label::Repeated) {
            failures.push(format!("{msg}.{field}: repeated should be {repeated}"));
        }
        if base.starts_with("map<") {
            let entry = m.nested_type.iter().find(|n| {
                f.type_name().ends_with(&format!(".{}", n.name()))
                    && n.options.as_ref().is_some_and(|o| o.map_entry())
            });
            match entry {
                Some(e) if e.field.iter().all(|kv| kv.r#type() == Type::String) => {}
                _ => failures.push(format!("{msg}.{field} is not a map<string,string>")),
            }
        } else if let Some(s) = scalar(base) {
            if f.r#type() != s {
                failures.push(format!("{msg}.{field} is {:?} not {s:?}", f.r#type()));
            }
        } else {
            let want_kind = if enums.contains_key(base) {
                Type::Enum
            } else {
                Type::Message
            };
            if f.r#type() != want_kind || f.type_name() != qualified(base) {
                failures.push(format!(
                    "{msg}.{field} is {:?} {} not {base}",
                    f.r#type(),
                    f.type_name()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "wire incompatibilities:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_upstream_enum_value_keeps_its_number() {
    let file = our_file();
    let enums = enums(&file);
    let mut failures = Vec::new();
    for line in ENUM_VALUES.lines().filter(|l| !l.trim().is_empty()) {
        let [e, value, number] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("bad table line {line:?}")
        };
        let number: i32 = number.parse().unwrap();
        let got = enums
            .get(e)
            .and_then(|d| d.value.iter().find(|v| v.name() == value))
            .map(|v| v.number());
        if got != Some(number) {
            failures.push(format!("{e}.{value} is {got:?}, not {number}"));
        }
    }
    assert!(
        failures.is_empty(),
        "wire incompatibilities:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_service_has_the_union_of_both_forks_methods() {
    let file = our_file();
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "NodeDaemonService")
        .expect("service NodeDaemonService");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in METHODS.lines().filter(|l| !l.trim().is_empty()) {
        count += 1;
        let parts: Vec<&str> = line.split(' ').collect();
        let (name, input, stream, output) = match parts[..] {
            [n, i, "stream", o] => (n, i, true, o),
            [n, i, o] => (n, i, false, o),
            _ => panic!("bad table line {line:?}"),
        };
        let Some(m) = service.method.iter().find(|m| m.name() == name) else {
            failures.push(format!("method {name} is missing"));
            continue;
        };
        if m.input_type() != qualified(input)
            || m.output_type() != qualified(output)
            || m.server_streaming() != stream
            || m.client_streaming()
        {
            failures.push(format!(
                "{name} is ({}) -> ({}{}), expected ({input}) -> ({}{output})",
                m.input_type(),
                if m.server_streaming() { "stream " } else { "" },
                m.output_type(),
                if stream { "stream " } else { "" },
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "wire incompatibilities:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        service.method.len(),
        count,
        "the service has methods neither fork has; extensions must be documented here"
    );
}

#[test]
fn fields_the_forks_gave_other_meanings_stay_reserved() {
    let file = our_file();
    let msgs = messages(&file);
    let status = msgs["VMStatusResponse"];
    for n in [6, 7] {
        assert!(status.field.iter().all(|f| f.number() != n));
        assert!(
            status
                .reserved_range
                .iter()
                .any(|r| r.start() <= n && n < r.end()),
            "VMStatusResponse field {n} must be reserved"
        );
    }
}

/// The console extension is its own service in its own file: a bidirectional stream, so
/// `NodeDaemonService` (checked above) keeps exactly the forks' methods.
#[test]
fn the_console_is_an_extension_service_of_its_own() {
    let set = FileDescriptorSet::decode(limiquantix_proto::FILE_DESCRIPTOR_SET).unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "limiquantix/node/v1/console.proto")
        .expect("console.proto is compiled");
    assert_eq!(file.package(), PACKAGE);
    let service = &file.service[0];
    assert_eq!(
        format!("{PACKAGE}.{}", service.name()),
        limiquantix_proto::CONSOLE_SERVICE_NAME
    );
    let attach = &service.method[0];
    assert_eq!(attach.name(), "AttachConsole");
    assert!(attach.client_streaming() && attach.server_streaming());
    assert_eq!(attach.input_type(), qualified("ConsoleInput"));
    assert_eq!(attach.output_type(), qualified("ConsoleOutput"));
}
