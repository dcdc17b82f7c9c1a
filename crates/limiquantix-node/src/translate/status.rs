//! Backend entry → wire status: power state, disks and boot progress of a VM.

use super::fields::GIB;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{self as m, DiskSource};
use limiquantix_vm::readiness::BootPhase;
use limiquantix_vm::{VmEntry, VmState};
use std::path::PathBuf;

/// The wire power state of a backend state.
pub fn power_state(s: VmState) -> pb::PowerState {
    match s {
        VmState::Stopped => pb::PowerState::Stopped,
        VmState::Running | VmState::Stopping => pb::PowerState::Running,
        VmState::Paused => pb::PowerState::Paused,
        VmState::Crashed => pb::PowerState::Crashed,
        VmState::Starting => pb::PowerState::Unknown,
        VmState::Migrating => pb::PowerState::Running,
    }
}

/// The wire form of a disk; `file` is where its data lives on the host.
fn wire_disk(def: &m::VmDefinition, d: &m::DiskSpec, file: Option<&PathBuf>) -> pb::DiskSpec {
    let created_path = || {
        file.filter(|_| d.is_created())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let (path, backing, size) = match &d.source {
        DiskSource::Path { path } => (path.display().to_string(), String::new(), 0),
        DiskSource::Overlay {
            backing,
            size_bytes,
        } => (created_path(), backing.display().to_string(), *size_bytes),
        DiskSource::Blank { size_bytes } => (created_path(), String::new(), *size_bytes),
    };
    pb::DiskSpec {
        id: def.api_id(&d.id).to_string(),
        path,
        size_gib: size.div_ceil(GIB),
        bus: wire_disk_bus(d.bus) as i32,
        format: match d.format {
            m::DiskFormat::Qcow2 => pb::DiskFormat::Qcow2,
            m::DiskFormat::Raw => pb::DiskFormat::Raw,
        } as i32,
        readonly: d.readonly,
        bootable: d.boot_index == Some(1),
        iops_limit: d.limits.and_then(|l| l.iops_total).unwrap_or(0),
        throughput_mbps: d.limits.and_then(|l| l.bps_total).unwrap_or(0) / 1_000_000,
        backing_file: backing,
        pool_id: String::new(),
    }
}

/// The wire enum of a disk bus.
fn wire_disk_bus(b: m::DiskBus) -> pb::DiskBus {
    match b {
        m::DiskBus::Virtio => pb::DiskBus::Virtio,
        m::DiskBus::Scsi => pb::DiskBus::Scsi,
        m::DiskBus::Sata => pb::DiskBus::Sata,
        m::DiskBus::Ide => pb::DiskBus::Ide,
    }
}

/// The wire enum of a boot phase.
pub fn wire_boot_phase(p: &BootPhase) -> pb::BootPhase {
    match p {
        BootPhase::QemuStarted => pb::BootPhase::QemuStarted,
        BootPhase::Firmware => pb::BootPhase::Firmware,
        BootPhase::KernelRunning => pb::BootPhase::KernelRunning,
        BootPhase::CloudInitRunning { .. } => pb::BootPhase::CloudInitRunning,
        BootPhase::Ready => pb::BootPhase::Ready,
        BootPhase::Failed { .. } => pb::BootPhase::Failed,
    }
}

/// The wire form of a boot phase.
pub fn boot_progress(p: &BootPhase) -> pb::BootProgress {
    pb::BootProgress {
        phase: wire_boot_phase(p) as i32,
        cloud_init_stage: match p {
            BootPhase::CloudInitRunning { stage } => stage.to_string(),
            _ => String::new(),
        },
        failure: match p {
            BootPhase::Failed { reason } => reason.to_string(),
            _ => String::new(),
        },
        description: p.to_string(),
    }
}

/// The wire status of a VM.
pub fn status_response(entry: &VmEntry) -> pb::VmStatusResponse {
    let def = &entry.definition;
    pb::VmStatusResponse {
        vm_id: def.id.as_str().to_string(),
        name: def.name.clone(),
        state: power_state(entry.status.state) as i32,
        resource_usage: Some(pb::ResourceUsage {
            memory_total_bytes: def.memory.mib * 1024 * 1024,
            ..Default::default()
        }),
        started_at: entry.status.started_at.map(prost_types::Timestamp::from),
        guest_agent: None,
        boot: entry.status.boot.as_ref().map(boot_progress),
        vcpus: def.cpu.vcpus(),
        disks: def
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| wire_disk(def, d, entry.disk_files.get(i)))
            .collect(),
        labels: def.labels.clone(),
    }
}
