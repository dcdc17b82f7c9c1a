//! A definition for tests of this crate and the crates above it (feature `fixtures`).

use super::*;

/// The fixture VM's id.
pub const ID: &str = "0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21";

/// A cloud-image VM: overlay disk, seed CD-ROM, one user-mode NIC with SSH forwarded.
pub fn cloud_vm() -> VmDefinition {
    let mut d = VmDefinition::new(VmId::parse(ID).unwrap(), "web1", 1024);
    d.cpu.cores = 2;
    d.disks.push(DiskSpec {
        id: "disk0".into(),
        source: DiskSource::Overlay {
            backing: "/var/lib/limiquantix/images/noble.qcow2".into(),
            size_bytes: 20 << 30,
        },
        bus: DiskBus::Virtio,
        format: DiskFormat::Qcow2,
        readonly: false,
        boot_index: None,
        limits: None,
    });
    d.cdroms.push(CdromSpec {
        id: "seed".into(),
        path: Some(format!("/var/lib/limiquantix/vms/{ID}/cloud-init.iso").into()),
        bootable: false,
        role: CdromRole::Seed,
        boot_index: None,
    });
    d.nics.push(NicSpec {
        id: "net0".into(),
        mac: None,
        model: NicModel::Virtio,
        network: NicNetwork::User {
            port_forwards: vec![PortForward {
                protocol: Protocol::Tcp,
                host_addr: std::net::Ipv4Addr::LOCALHOST,
                host_port: 40022,
                guest_port: 22,
            }],
        },
    });
    d
}
