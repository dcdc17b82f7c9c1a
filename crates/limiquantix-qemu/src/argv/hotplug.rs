//! The QMP JSON of a hot-plugged disk or NIC: the same nodes, objects and devices the command
//! line gives a cold-plugged one (`blockdev`, `device`, `netdev`), so a disk or NIC is the same
//! whichever way it came. The root ports they plug into are laid out at boot ([`super::ports`]).

use serde_json::{Value, json};

use super::boot::{BootDevice, BootEntry, index_of};
use super::common::utf8;
use super::types::BootError;
use super::{blockdev, device, netdev};
use crate::paths::RuntimePaths;
use limiquantix_vm::model::{MacAddr, VmDefinition};

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
