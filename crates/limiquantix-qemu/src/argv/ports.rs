//! The PCIe root ports a VM gets at boot so devices can be hot-plugged and unplugged.
//!
//! On q35 the devices of the command line sit on the root complex (`pcie.0`), which has no
//! hot-plug; a hot-plugged PCI device needs a free `pcie-root-port`. Each VM gets
//! [`HostConfig::hotplug_ports`] spare ports (`hp0`, `hp1`, ...) at boot. On `pc` the PCI bus
//! itself takes hot-plugged devices (ACPI hot-plug), so no port is added.

use serde_json::json;

use super::common::Argv;
use super::types::HostConfig;
use limiquantix_vm::model::{MachineType, VmDefinition};

/// Prefix of the spare root ports' ids.
pub const HOTPLUG_PORT_PREFIX: &str = "hp";

/// Most spare root ports a VM gets (each takes a slot of the root complex's 32).
pub const MAX_SPARE_PORTS: u8 = 16;

/// Emits the spare root ports of a q35 VM.
pub(super) fn root_ports(a: &mut Argv, def: &VmDefinition, host: &HostConfig) {
    if def.effective_machine() != MachineType::Q35 {
        return;
    }
    for i in 0..host.hotplug_ports.min(MAX_SPARE_PORTS) {
        a.json(
            "-device",
            json!({
                "driver": "pcie-root-port",
                "id": format!("{HOTPLUG_PORT_PREFIX}{i}"),
                "bus": "pcie.0",
                "chassis": u16::from(i) + 1,
            }),
        );
    }
}

/// The root port device `id` sits on at boot when it must stay detachable live: on q35, every
/// virtio disk but the boot disk and every NIC but the first get a port of their own (`rp-<id>`,
/// emitted here), as libvirt lays q35 out; the boot disk and the first NIC stay on the root
/// complex, so a one-disk, one-NIC VM keeps the layout it always had. `None` elsewhere.
pub(super) fn own_port(a: &mut Argv, def: &VmDefinition, id: &str, chassis: u16) -> Option<String> {
    if def.effective_machine() != MachineType::Q35 {
        return None;
    }
    let port = format!("rp-{id}");
    a.json(
        "-device",
        json!({ "driver": "pcie-root-port", "id": port, "bus": "pcie.0", "chassis": chassis }),
    );
    Some(port)
}
