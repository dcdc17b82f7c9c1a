//! `/api/v1/registration/discovery`'s document: the host facts RegisterNode sends (the same
//! collector, [`crate::cluster::NodeFacts`]), GPUs from the PCI class codes in sysfs (class
//! `0x03xxxx`, display controllers; empty when none), NFS mounts from the pools, no iSCSI
//! (this node attaches none). JSON in the control plane's camelCase.

use crate::cluster::facts::NodeFacts;
use crate::pools::{Pool, PoolKind};
use limiquantix_proto::compute::v1::storage_device::DeviceType;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The discovery document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// Host name.
    pub hostname: String,
    /// The address the control plane reached this node on (an IP literal), or empty.
    pub management_ip: String,
    /// Processors.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Local disks, NFS pools, iSCSI (none).
    pub storage: Storage,
    /// Network interfaces.
    pub network: Vec<Nic>,
    /// GPUs.
    pub gpus: Vec<Gpu>,
}

/// Processors.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Model name.
    pub model: String,
    /// `GenuineIntel`, `AuthenticAMD`, ...
    pub vendor: String,
    /// Physical cores (sockets × cores per socket).
    pub cores: u32,
    /// Logical CPUs.
    pub threads: u32,
    /// Packages.
    pub sockets: u32,
    /// Clock, MHz.
    pub frequency_mhz: u64,
    /// CPU flags.
    pub features: Vec<String>,
    /// `x86_64`, ...
    pub architecture: String,
}

/// Memory, bytes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// MemTotal.
    pub total_bytes: u64,
    /// MemAvailable.
    pub available_bytes: u64,
    /// Total − available.
    pub used_bytes: u64,
}

/// Storage.
#[derive(Debug, Serialize)]
pub struct Storage {
    /// Local disks.
    pub local: Vec<LocalDisk>,
    /// NFS pools.
    pub nfs: Vec<NfsMount>,
    /// iSCSI targets (none).
    pub iscsi: Vec<serde_json::Value>,
}

/// A local disk.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalDisk {
    /// `sda`.
    pub name: String,
    /// `/dev/sda`.
    pub path: String,
    /// Model.
    pub model: String,
    /// Serial.
    pub serial: String,
    /// Size.
    pub size_bytes: u64,
    /// `HDD`, `SSD` or `NVME`.
    pub disk_type: String,
    /// `nvme`, `scsi`, `virtio`, ...
    pub interface: String,
    /// Neither partitioned nor held.
    pub available: bool,
}

/// An NFS pool.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NfsMount {
    /// The pool's id.
    pub pool_id: String,
    /// Its mount point.
    pub mount_point: String,
    /// The server.
    pub server: String,
    /// The export.
    pub export_path: String,
    /// Figures of the mounted filesystem (0 when not mounted).
    pub size_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
    /// Available bytes.
    pub available_bytes: u64,
}

/// A network interface.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// Name.
    pub name: String,
    /// MAC.
    pub mac_address: String,
    /// Kernel driver.
    pub driver: String,
    /// Speed (0 when unknown).
    pub speed_mbps: u64,
    /// `up`, `down`, ... (`operstate`).
    pub link_state: String,
    /// PCI address, when on PCI.
    pub pci_address: String,
    /// Whether it has SR-IOV functions.
    pub sriov_capable: bool,
    /// Virtual functions it may have.
    pub sriov_vfs: u32,
}

/// A GPU (a PCI display controller).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// `PCI 10de:2204 (VGA)`: the ids (no name database on the node).
    pub name: String,
    /// `NVIDIA`, `AMD`, `Intel` or the vendor id.
    pub vendor: String,
    /// `0000:01:00.0`.
    pub pci_address: String,
    /// Unknown: 0.
    pub memory_bytes: u64,
    /// vGPU profiles, comma-separated (a string, as the control plane decodes it): none known.
    pub vgpu_profiles: String,
}

fn attr(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The display controllers under `root` (`/sys/bus/pci/devices`).
pub fn gpus(root: &Path) -> Vec<Gpu> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|addr| {
            let dev = root.join(&addr);
            let class = attr(&dev.join("class"));
            let sub = class.strip_prefix("0x03")?;
            let kind = match sub.get(..2) {
                Some("00") => "VGA",
                Some("02") => "3D",
                _ => "display",
            };
            let vendor_id = attr(&dev.join("vendor"))
                .trim_start_matches("0x")
                .to_string();
            let device_id = attr(&dev.join("device"))
                .trim_start_matches("0x")
                .to_string();
            let vendor = match vendor_id.as_str() {
                "10de" => "NVIDIA".to_string(),
                "1002" => "AMD".to_string(),
                "8086" => "Intel".to_string(),
                "1af4" => "Red Hat (virtio)".to_string(),
                "1234" => "QEMU".to_string(),
                other => other.to_string(),
            };
            Some(Gpu {
                name: format!("PCI {vendor_id}:{device_id} ({kind})"),
                vendor,
                pci_address: addr,
                memory_bytes: 0,
                vgpu_profiles: String::new(),
            })
        })
        .collect()
}

/// The document from this host's facts, pools and address. Blocking (reads sysfs, statvfs).
pub fn read(management_ip: String, pools: &BTreeMap<String, Pool>) -> Discovery {
    let facts = NodeFacts::read();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vendor = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("vendor_id")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let sys_net = Path::new("/sys/class/net");
    Discovery {
        hostname: facts.hostname,
        management_ip,
        cpu: Cpu {
            model: facts.cpu.model,
            vendor,
            cores: facts.cpu.sockets * facts.cpu.cores_per_socket,
            threads: facts.cpu.total_threads,
            sockets: facts.cpu.sockets,
            frequency_mhz: facts.cpu.frequency_mhz,
            features: facts.cpu.features,
            architecture: std::env::consts::ARCH.to_string(),
        },
        memory: Memory {
            total_bytes: facts.memory.total,
            available_bytes: facts.memory.available,
            used_bytes: facts.memory.total.saturating_sub(facts.memory.available),
        },
        storage: Storage {
            local: facts.storage.into_iter().map(local_disk).collect(),
            nfs: nfs_mounts(pools),
            iscsi: Vec::new(),
        },
        network: facts
            .network
            .into_iter()
            .map(|n| Nic {
                link_state: attr(&sys_net.join(&n.name).join("operstate")),
                pci_address: std::fs::read_link(sys_net.join(&n.name).join("device"))
                    .ok()
                    .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .unwrap_or_default(),
                name: n.name,
                mac_address: n.mac_address,
                driver: n.driver,
                speed_mbps: n.speed_mbps,
                sriov_capable: n.sriov_capable,
                sriov_vfs: n.sriov_vfs_total,
            })
            .collect(),
        gpus: gpus(Path::new("/sys/bus/pci/devices")),
    }
}

fn local_disk(d: limiquantix_proto::compute::v1::StorageDevice) -> LocalDisk {
    let name = d.path.trim_start_matches("/dev/").to_string();
    let interface = ["nvme", "vd", "sd", "hd", "xvd", "mmcblk"]
        .iter()
        .find(|p| name.starts_with(*p))
        .map_or("unknown", |p| match *p {
            "vd" => "virtio",
            "sd" => "scsi",
            "hd" => "ide",
            "xvd" => "xen",
            other => other,
        })
        .to_string();
    let disk_type = match DeviceType::try_from(d.r#type) {
        Ok(DeviceType::Nvme) => "NVME",
        Ok(DeviceType::Hdd) => "HDD",
        _ => "SSD",
    };
    LocalDisk {
        name,
        path: d.path,
        model: d.model,
        serial: d.serial,
        size_bytes: d.size_bytes,
        disk_type: disk_type.to_string(),
        interface,
        available: d.available,
    }
}

fn nfs_mounts(pools: &BTreeMap<String, Pool>) -> Vec<NfsMount> {
    pools
        .iter()
        .filter_map(|(id, p)| match &p.kind {
            PoolKind::Nfs {
                server,
                export_path,
                ..
            } => {
                let (size, avail, used) =
                    crate::hostinfo::filesystem_usage(&p.dir).unwrap_or_default();
                Some(NfsMount {
                    pool_id: id.clone(),
                    mount_point: p.dir.display().to_string(),
                    server: server.clone(),
                    export_path: export_path.clone(),
                    size_bytes: size,
                    used_bytes: used,
                    available_bytes: avail,
                })
            }
            PoolKind::LocalDir => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_controllers_are_gpus_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        for (addr, class, vendor) in [
            ("0000:00:02.0", "0x030000", "0x8086"),
            ("0000:01:00.0", "0x030200", "0x10de"),
            ("0000:00:1f.2", "0x010601", "0x8086"),
        ] {
            let d = root.path().join(addr);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("class"), format!("{class}\n")).unwrap();
            std::fs::write(d.join("vendor"), format!("{vendor}\n")).unwrap();
            std::fs::write(d.join("device"), "0x1234\n").unwrap();
        }
        let g = gpus(root.path());
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].vendor, "Intel");
        assert_eq!(g[1].pci_address, "0000:01:00.0");
        assert_eq!(g[1].name, "PCI 10de:1234 (3D)");
        assert!(gpus(&root.path().join("missing")).is_empty());
        // The control plane decodes vgpuProfiles into a Go string: an array would fail it all.
        let json = serde_json::to_value(&g[0]).unwrap();
        assert!(json["vgpuProfiles"].is_string(), "{json}");
    }
}
