//! Spare PCIe root ports for hot-plug, and the QMP JSON of a hot-plugged disk or NIC: the same
//! nodes, objects and devices the command line gives a cold-plugged one (`blockdev`, `device`,
//! `netdev`), so a disk or NIC is the same whichever way it came.
//!
//! On q35 the devices of the command line sit on the root complex (`pcie.0`), which has no
//! hot-plug; a hot-plugged PCI device needs a free `pcie-root-port`. Each VM gets
//! [`HostConfig::hotplug_ports`] spare ports (`hp0`, `hp1`, ...) at boot. On `pc` the PCI bus
//! itself takes hot-plugged devices (ACPI hot-plug), so no port is added.

use serde_json::{Value, json};

use super::boot::{BootDevice, BootEntry, index_of};
use super::common::{Argv, utf8};
use super::types::{BootError, HostConfig};
use super::{blockdev, device, netdev};
use crate::paths::RuntimePaths;
use limiquantix_vm::model::{MacAddr, MachineType, VmDefinition};

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

/// What hot-plugging one disk takes, in order: `object-add` each object, `blockdev-add` each
/// node (bottom first), then `device_add` the device (the caller sets its `bus`).
#[derive(Debug, Clone)]
pub struct DiskPlug {
    /// Throttle groups.
    pub objects: Vec<Value>,
    /// Block nodes, bottom first.
    pub nodes: Vec<Value>,
    /// The device, without a bus for a virtio disk.
    pub device: Value,
}

/// The plug of disk number `index` of `def`, as the command line would attach it (without a
/// boot index: a hot-plugged disk is never in the firmware's boot order of the running VM).
pub fn disk_plug(
    def: &VmDefinition,
    paths: &RuntimePaths,
    index: usize,
) -> Result<DiskPlug, BootError> {
    let d = &def.disks[index];
    let path = paths
        .disk_of(def, index)
        .unwrap_or_else(|| paths.disk_file(index, d.format));
    let nodes = blockdev::image(
        &d.id,
        utf8(&format!("disks[{index}] file"), &path)?,
        d.format,
        d.readonly,
        d.limits.as_ref(),
    );
    let device = device::disk(d, &nodes.top, None, &mut device::Slots::default());
    Ok(DiskPlug {
        objects: nodes.objects,
        nodes: nodes.nodes,
        device,
    })
}

/// The `netdev_add` and `device_add` arguments of NIC number `index` of `def`.
pub fn nic_plug(def: &VmDefinition, index: usize, order: &[BootEntry]) -> (Value, Value) {
    let n = &def.nics[index];
    let mac = n.mac.unwrap_or_else(|| MacAddr::derive(&def.id, index));
    let bi = index_of(order, BootDevice::Nic, &n.id);
    (netdev::netdev(n), netdev::nic_device(n, mac, bi))
}

/// The virtio-scsi controller's `device_add` arguments (for a SCSI disk on a VM without one).
pub fn scsi_controller() -> Value {
    json!({ "driver": "virtio-scsi-pci", "id": device::SCSI })
}

/// The id of the virtio-scsi controller.
pub const SCSI_CONTROLLER: &str = device::SCSI;
