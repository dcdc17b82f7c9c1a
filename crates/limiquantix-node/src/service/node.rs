//! HealthCheck and GetNodeInfo.

use super::core::NodeService;
use crate::error::ApiError;
use crate::hostinfo::{HostFacts, filesystem_usage};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use std::path::Path;

/// Most vCPUs one VM may have (the model's topology limits: 16 sockets × 128 cores × 2 threads
/// would exceed QEMU's q35 limit of 288; we report QEMU's).
const MAX_VCPUS: u32 = 288;

impl<B: VmBackend> NodeService<B> {
    pub(super) fn health(&self) -> pb::HealthCheckResponse {
        let h = &self.inner.hypervisor;
        pb::HealthCheckResponse {
            healthy: h.qemu_version.is_some(),
            version: env!("CARGO_PKG_VERSION").into(),
            hypervisor: "qemu".into(),
            hypervisor_version: h.qemu_version.clone().unwrap_or_default(),
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            accelerator: Some(h.accelerator()),
        }
    }

    pub(super) async fn node_info(&self) -> Result<pb::NodeInfoResponse, ApiError> {
        let state_dir = self.inner.config.state_dir.clone();
        let (facts, fs, network) = tokio::task::spawn_blocking(move || {
            (
                HostFacts::read(),
                filesystem_usage(&state_dir).map(|u| (state_dir, u)),
                network_info(Path::new("/sys/class/net")),
            )
        })
        .await?;
        let h = &self.inner.hypervisor;
        let version = h.qemu_version.clone().unwrap_or_default();
        let capabilities = capabilities(h, &version, facts.memory.total);
        let c = &facts.cpu;
        let control_plane = self
            .inner
            .control_plane
            .get()
            .map(|status| status.borrow().to_proto());
        Ok(pb::NodeInfoResponse {
            node_id: facts
                .machine_id
                .clone()
                .unwrap_or_else(|| facts.hostname.clone()),
            hostname: facts.hostname.clone(),
            management_ip: control_plane
                .as_ref()
                .map(|cp| cp.management_ip.clone())
                .unwrap_or_default(),
            cpu: Some(pb::CpuInfo {
                model: c.model.clone(),
                sockets: c.sockets,
                cores_per_socket: c.cores_per_socket,
                threads_per_core: c.threads_per_core,
                total_threads: c.total_threads,
                frequency_mhz: c.frequency_mhz,
                features: c.features.clone(),
            }),
            memory: Some(pb::MemoryInfo {
                total_bytes: facts.memory.total,
                available_bytes: facts.memory.available,
                used_bytes: facts.memory.total.saturating_sub(facts.memory.available),
            }),
            storage: fs
                .map(|(dir, (total, available, used))| pb::StorageInfo {
                    device: String::new(),
                    mount_point: dir.display().to_string(),
                    total_bytes: total,
                    used_bytes: used,
                    available_bytes: available,
                    filesystem: String::new(),
                })
                .into_iter()
                .collect(),
            network,
            os_version: facts.os_version.clone(),
            kernel_version: facts.kernel.clone(),
            uptime_seconds: facts.uptime_seconds,
            hypervisor_name: capabilities.name.clone(),
            hypervisor_version: version,
            supports_live_migration: false,
            supports_snapshots: false,
            supports_hotplug: false,
            max_vcpus: MAX_VCPUS,
            max_memory_bytes: facts.memory.total,
            os_name: facts.os_name.clone(),
            capabilities: Some(capabilities),
            control_plane,
            accelerator: Some(h.accelerator()),
        })
    }
}

/// What the hypervisor can do, as GetNodeInfo answers it.
fn capabilities(
    h: &super::core::Hypervisor,
    version: &str,
    memory: u64,
) -> pb::HypervisorCapabilities {
    pb::HypervisorCapabilities {
        name: format!("qemu ({})", h.accel.qemu_name()),
        version: version.into(),
        supports_live_migration: false,
        supports_snapshots: false,
        supports_hotplug: false,
        supports_gpu_passthrough: false,
        supports_nested_virtualization: false,
        max_vcpus: MAX_VCPUS,
        max_memory_bytes: memory,
    }
}

impl super::core::Hypervisor {
    /// The accelerator in use and why, as HealthCheck and GetNodeInfo answer it.
    fn accelerator(&self) -> pb::AcceleratorStatus {
        pb::AcceleratorStatus {
            accelerator: self.accel.qemu_name().into(),
            reason: self.accel_reason.clone(),
            probe_millis: self.probe_millis.unwrap_or(0),
        }
    }
}

/// The host's network interfaces (the ones RegisterNode reports: no loopback, veth or tap ends)
/// with their link state.
fn network_info(root: &Path) -> Vec<pb::NetworkInfo> {
    crate::cluster::facts::net_devices(root)
        .into_iter()
        .map(|d| pb::NetworkInfo {
            up: std::fs::read_to_string(root.join(&d.name).join("operstate"))
                .is_ok_and(|s| s.trim() == "up"),
            name: d.name,
            mac_address: d.mac_address,
            ip_addresses: Vec::new(),
            speed_mbps: d.speed_mbps,
        })
        .collect()
}
