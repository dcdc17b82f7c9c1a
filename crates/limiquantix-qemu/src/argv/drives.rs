//! Storage controllers, disks and CD-ROMs.

use serde_json::json;

use super::boot::{BootDevice, BootEntry, index_of};
use super::common::{Argv, utf8};
use super::device::CdBus;
use super::types::BootError;
use super::{blockdev, device, ports};
use crate::paths::RuntimePaths;
use limiquantix_vm::hotplug::boot_disk;
use limiquantix_vm::model::{CdromRole, DiskBus, DiskFormat, GuestOs, VmDefinition};

/// Emits the controllers, then every disk, then the CD-ROMs (the seed last).
pub(super) fn drives(
    a: &mut Argv,
    def: &VmDefinition,
    paths: &RuntimePaths,
    order: &[BootEntry],
) -> Result<(), BootError> {
    let mut slots = device::Slots::default();
    let bus_of = |role: CdromRole| {
        if role == CdromRole::Seed && def.guest_os == GuestOs::Linux {
            CdBus::Scsi
        } else {
            CdBus::Ahci
        }
    };
    let on_scsi = def.cdroms.iter().any(|c| bus_of(c.role) == CdBus::Scsi);
    let on_ahci = def.cdroms.iter().any(|c| bus_of(c.role) == CdBus::Ahci);
    if on_scsi || def.disks.iter().any(|d| d.bus == DiskBus::Scsi) {
        a.json(
            "-device",
            json!({ "driver": "virtio-scsi-pci", "id": device::SCSI }),
        );
    }
    if on_ahci || def.disks.iter().any(|d| d.bus == DiskBus::Sata) {
        a.json(
            "-device",
            json!({ "driver": "ich9-ahci", "id": device::AHCI }),
        );
    }
    for (i, d) in def.disks.iter().enumerate() {
        let path = paths
            .disk_of(def, i)
            .unwrap_or_else(|| paths.disk_file(i, d.format));
        let nodes = blockdev::image(
            &d.id,
            utf8(&format!("disks[{i}] file"), &path)?,
            d.format,
            d.readonly,
            d.limits.as_ref(),
        );
        for o in nodes.objects {
            a.json("-object", o);
        }
        for n in nodes.nodes {
            a.json("-blockdev", n);
        }
        let bi = index_of(order, BootDevice::Disk, &d.id);
        let mut dev = device::disk(d, &nodes.top, bi, &mut slots);
        if d.bus == DiskBus::Virtio && boot_disk(def) != Some(i) {
            // Chassis 100 + index: apart from the spare ports' 1..=255-100.
            if let Some(port) = ports::own_port(a, def, &d.id, 100 + i as u16) {
                dev["bus"] = port.into();
            }
        }
        a.json("-device", dev);
    }
    // SATA disks took the first AHCI ports; CD-ROMs follow, the seed last (on virtio-scsi for
    // a Linux guest, see `device`).
    let mut cdroms: Vec<_> = def.cdroms.iter().enumerate().collect();
    cdroms.sort_by_key(|(_, c)| c.role == CdromRole::Seed);
    for (i, c) in cdroms {
        let drive = match &c.path {
            Some(p) => {
                let field = format!("cdroms[{i}].path");
                let nodes = blockdev::image(&c.id, utf8(&field, p)?, DiskFormat::Raw, true, None);
                for n in nodes.nodes {
                    a.json("-blockdev", n);
                }
                Some(nodes.top)
            }
            None => None,
        };
        let bi = index_of(order, BootDevice::Cdrom, &c.id);
        a.json(
            "-device",
            device::cdrom(&c.id, drive.as_deref(), bi, bus_of(c.role), &mut slots),
        );
    }
    Ok(())
}
