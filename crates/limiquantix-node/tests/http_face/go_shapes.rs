//! The control plane's Go types of the discovery document (`host_registration_handler.go`),
//! field for field with the same JSON names and the same strictness on types (a Go `int` or
//! `string` refuses anything else, and one refused field fails the whole document). Unknown
//! fields are ignored, as Go does.
#![allow(dead_code)]

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostDiscoveryResponse {
    pub hostname: String,
    pub management_ip: String,
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub storage: StorageInfo,
    pub network: Vec<NetworkInfo>,
    pub gpus: Vec<GpuInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuInfo {
    pub model: String,
    #[serde(default)]
    pub vendor: String,
    pub cores: i64,
    pub threads: i64,
    pub sockets: i64,
    #[serde(default)]
    pub frequency_mhz: u64,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub architecture: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    #[serde(default)]
    pub used_bytes: u64,
}

#[derive(Debug, Deserialize)]
pub struct StorageInfo {
    pub local: Vec<LocalDisk>,
    pub nfs: Vec<NfsMount>,
    pub iscsi: Vec<IscsiTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalDisk {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub serial: String,
    pub size_bytes: u64,
    pub disk_type: String,
    pub interface: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NfsMount {
    pub mount_point: String,
    pub server: String,
    pub export_path: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IscsiTarget {
    pub target_iqn: String,
    pub portal: String,
    pub device_path: String,
    pub size_bytes: u64,
    pub lun: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    pub name: String,
    pub mac_address: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub speed_mbps: Option<u64>,
    #[serde(default)]
    pub link_state: String,
    #[serde(default)]
    pub pci_address: Option<String>,
    #[serde(default)]
    pub sriov_capable: bool,
    #[serde(default)]
    pub sriov_vfs: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    pub name: String,
    pub vendor: String,
    #[serde(default)]
    pub pci_address: String,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub vgpu_profiles: String,
}
