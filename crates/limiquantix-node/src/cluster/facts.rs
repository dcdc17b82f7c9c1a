//! What RegisterNode tells the control plane about this host: host name, CPU, memory, block
//! devices (`/sys/block`) and network interfaces (`/sys/class/net`), and the management address
//! (the local end of the route to the control plane, or the configured one).

use crate::hostinfo::{self, CpuFacts, MemFacts};
use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::compute::v1::storage_device::DeviceType;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The port the control plane dials on a node's management address (it appends it itself).
pub const NODE_GRPC_PORT: u16 = 9090;

/// Block devices that are no storage: loop, RAM disks, device-mapper nodes, optical, floppy,
/// network block devices.
const SKIPPED_BLOCK: &[&str] = &["loop", "ram", "zram", "dm-", "sr", "fd", "nbd"];
/// Interfaces that are no host NICs: loopback and the per-VM or per-container ends.
const SKIPPED_NET: &[&str] = &["lo", "veth", "tap", "vnet", "docker"];

/// The host's facts, read once per registration (blocking: call from `spawn_blocking`).
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// `uname -n`.
    pub hostname: String,
    /// Processors.
    pub cpu: CpuFacts,
    /// Memory.
    pub memory: MemFacts,
    /// Disks.
    pub storage: Vec<compute::StorageDevice>,
    /// Network interfaces.
    pub network: Vec<compute::NetworkDevice>,
}

impl NodeFacts {
    /// Reads this host's facts.
    pub fn read() -> Self {
        NodeFacts {
            hostname: hostinfo::uname().1,
            cpu: hostinfo::cpu_facts(),
            memory: hostinfo::parse_meminfo(
                &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
            ),
            storage: block_devices(Path::new("/sys/block")),
            network: net_devices(Path::new("/sys/class/net")),
        }
    }

    /// The RegisterNode request: a compute node at `management_ip`, registered with `:9090`
    /// appended as the upstream node does (the control plane strips it and dials it back).
    pub fn register_request(&self, management_ip: Ipv4Addr) -> compute::RegisterNodeRequest {
        let c = &self.cpu;
        compute::RegisterNodeRequest {
            hostname: self.hostname.clone(),
            management_ip: format!("{management_ip}:{NODE_GRPC_PORT}"),
            role: Some(compute::NodeRole {
                compute: true,
                ..Default::default()
            }),
            cpu_info: Some(compute::CpuInfo {
                model: c.model.clone(),
                sockets: c.sockets,
                cores_per_socket: c.cores_per_socket,
                threads_per_core: c.threads_per_core,
                total_threads: c.total_threads,
                frequency_mhz: c.frequency_mhz,
                features: c.features.clone(),
                ..Default::default()
            }),
            // Allocatable as the upstream node reports it: what the host has available now.
            memory_info: Some(compute::MemoryInfo {
                total_bytes: self.memory.total,
                allocatable_bytes: self.memory.available,
                ..Default::default()
            }),
            storage_devices: self.storage.clone(),
            network_devices: self.network.clone(),
            ..Default::default()
        }
    }
}

/// A sysfs attribute, trimmed.
fn attr(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The names of a directory's entries, sorted (non-UTF-8 names skipped).
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The disks under `root` (`/sys/block`): size, model, serial, NVMe / SSD / HDD (from
/// `queue/rotational`). Removable and empty devices are left out; a disk with partitions or
/// holders (LVM, RAID, device-mapper) is not `available`.
pub fn block_devices(root: &Path) -> Vec<compute::StorageDevice> {
    let mut out = Vec::new();
    for name in sorted_names(root) {
        if SKIPPED_BLOCK.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = root.join(&name);
        let sectors: u64 = attr(&dev.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if sectors == 0 || attr(&dev.join("removable")).as_deref() == Some("1") {
            continue;
        }
        let kind = if name.starts_with("nvme") {
            DeviceType::Nvme
        } else if attr(&dev.join("queue/rotational")).as_deref() == Some("1") {
            DeviceType::Hdd
        } else {
            DeviceType::Ssd
        };
        let partitioned = sorted_names(&dev)
            .iter()
            .any(|p| p.starts_with(&name) && dev.join(p).join("partition").exists());
        let held = !sorted_names(&dev.join("holders")).is_empty();
        out.push(compute::StorageDevice {
            path: format!("/dev/{name}"),
            model: attr(&dev.join("device/model")).unwrap_or_default(),
            serial: attr(&dev.join("device/serial")).unwrap_or_default(),
            size_bytes: sectors * 512,
            r#type: kind as i32,
            available: !partitioned && !held,
            ..Default::default()
        });
    }
    out
}

/// The interfaces under `root` (`/sys/class/net`): name, MAC, speed (0 when unknown), MTU,
/// driver, NUMA node and SR-IOV virtual functions. Loopback, veth, tap/vnet and docker ends
/// are left out.
pub fn net_devices(root: &Path) -> Vec<compute::NetworkDevice> {
    let mut out = Vec::new();
    for name in sorted_names(root) {
        if SKIPPED_NET.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = root.join(&name);
        let number =
            |f: &str| -> i64 { attr(&dev.join(f)).and_then(|s| s.parse().ok()).unwrap_or(0) };
        let driver = std::fs::read_link(dev.join("device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let vfs_total = number("device/sriov_totalvfs").max(0) as u32;
        out.push(compute::NetworkDevice {
            mac_address: attr(&dev.join("address")).unwrap_or_default(),
            driver,
            // Unknown speeds read as -1 (or fail to read) on virtual and down links.
            speed_mbps: number("speed").max(0) as u64,
            mtu: number("mtu").max(0) as u32,
            numa_node: number("device/numa_node").max(0) as u32,
            sriov_capable: vfs_total > 0,
            sriov_vfs_total: vfs_total,
            sriov_vfs_used: number("device/sriov_numvfs").max(0) as u32,
            name,
            ..Default::default()
        });
    }
    out
}

/// The local IPv4 address of the route to the control plane at `url`: a UDP socket connected
/// to it (nothing is sent) names the address the kernel would use.
pub async fn route_address(url: &str) -> Result<Ipv4Addr, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("control plane URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve the control plane host {host:?}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| {
            format!(
                "the control plane host {host:?} has no IPv4 address; \
                 set [control_plane] management_ip"
            )
        })?;
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(target)
        .await
        .map_err(|e| format!("no route to the control plane at {target}: {e}"))?;
    match socket.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) if !ip.is_unspecified() => Ok(ip),
        other => Err(format!(
            "no local IPv4 address routes to {target} ({other:?}); set [control_plane] management_ip"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn block_devices_are_typed_and_filtered() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(&r.join("sda/size"), "2097152\n");
        write(&r.join("sda/queue/rotational"), "1\n");
        write(&r.join("sda/device/model"), "WDC WD10EZEX  \n");
        write(&r.join("sda/sda1/partition"), "1\n");
        write(&r.join("vdb/size"), "1024\n");
        write(&r.join("vdb/queue/rotational"), "0\n");
        write(&r.join("nvme0n1/size"), "4096\n");
        write(&r.join("nvme0n1/device/serial"), "S1\n");
        write(&r.join("loop0/size"), "100\n");
        write(&r.join("sdc/size"), "100\n");
        write(&r.join("sdc/removable"), "1\n");
        write(&r.join("sdd/size"), "0\n");
        let devs = block_devices(r);
        let names: Vec<&str> = devs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(names, ["/dev/nvme0n1", "/dev/sda", "/dev/vdb"]);
        assert_eq!(devs[0].r#type, DeviceType::Nvme as i32);
        assert_eq!(devs[0].serial, "S1");
        assert_eq!(devs[1].r#type, DeviceType::Hdd as i32);
        assert_eq!(devs[1].model, "WDC WD10EZEX");
        assert_eq!(devs[1].size_bytes, 1 << 30);
        assert!(!devs[1].available, "partitioned");
        assert_eq!(devs[2].r#type, DeviceType::Ssd as i32);
        assert!(devs[2].available);
    }

    #[test]
    fn net_devices_read_mac_speed_mtu() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(&r.join("eth0/address"), "52:54:00:12:34:56\n");
        write(&r.join("eth0/speed"), "1000\n");
        write(&r.join("eth0/mtu"), "9000\n");
        write(&r.join("eth0/device/sriov_totalvfs"), "8\n");
        write(&r.join("br0/address"), "52:54:00:00:00:01\n");
        write(&r.join("br0/speed"), "-1\n");
        write(&r.join("br0/mtu"), "1500\n");
        write(&r.join("lo/address"), "00:00:00:00:00:00\n");
        write(&r.join("veth12/address"), "x\n");
        let nics = net_devices(r);
        assert_eq!(nics.len(), 2);
        assert_eq!(
            (nics[0].name.as_str(), nics[0].speed_mbps, nics[0].mtu),
            ("br0", 0, 1500)
        );
        let eth = &nics[1];
        assert_eq!(eth.mac_address, "52:54:00:12:34:56");
        assert_eq!((eth.speed_mbps, eth.mtu), (1000, 9000));
        assert!(eth.sriov_capable);
    }

    #[test]
    fn the_registration_carries_the_port_and_the_compute_role() {
        let facts = NodeFacts::read();
        assert!(!facts.hostname.is_empty());
        let req = facts.register_request(Ipv4Addr::new(192, 168, 0, 53));
        assert_eq!(req.management_ip, "192.168.0.53:9090");
        assert!(req.role.unwrap().compute);
        let cpu = req.cpu_info.unwrap();
        assert!(cpu.sockets * cpu.cores_per_socket > 0);
        assert!(req.memory_info.unwrap().total_bytes > 0);
    }

    #[tokio::test]
    async fn the_route_to_loopback_is_loopback() {
        let ip = route_address("http://127.0.0.1:8080").await.unwrap();
        assert_eq!(ip, Ipv4Addr::LOCALHOST);
        assert!(route_address("http://[::1]:8080").await.is_err());
    }
}
