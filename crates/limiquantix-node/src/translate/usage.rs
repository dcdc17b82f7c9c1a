//! Backend usage samples → wire figures: `ResourceUsage` of a VM's status and `VMMetrics` of
//! StreamMetrics.

use limiquantix_proto::v1 as pb;
use limiquantix_vm::{VmDefinition, VmUsage};

/// A VM's `ResourceUsage`: its memory size always, the collector's last sample when it runs.
pub fn resource_usage(def: &VmDefinition, usage: Option<&VmUsage>) -> pb::ResourceUsage {
    let memory_total_bytes = def.memory.mib * 1024 * 1024;
    let Some(u) = usage else {
        return pb::ResourceUsage {
            memory_total_bytes,
            ..Default::default()
        };
    };
    pb::ResourceUsage {
        cpu_usage_percent: u.cpu_percent,
        cpu_time_ns: u.cpu_time_ns,
        memory_used_bytes: u.memory_used_bytes,
        memory_total_bytes,
        disk_read_bytes: u.disk_read_bytes,
        disk_write_bytes: u.disk_write_bytes,
        network_rx_bytes: u.net_rx_bytes,
        network_tx_bytes: u.net_tx_bytes,
    }
}

/// A VM's line of StreamMetrics.
pub fn vm_metrics(def: &VmDefinition, u: &VmUsage) -> pb::VmMetrics {
    pb::VmMetrics {
        vm_id: def.id.as_str().to_string(),
        name: def.name.clone(),
        cpu_usage_percent: u.cpu_percent,
        memory_used_bytes: u.memory_used_bytes,
        disk_read_bytes: u.disk_read_bytes,
        disk_write_bytes: u.disk_write_bytes,
        network_rx_bytes: u.net_rx_bytes,
        network_tx_bytes: u.net_tx_bytes,
    }
}
