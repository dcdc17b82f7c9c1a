//! Storage `-device` JSON: controllers, disks and CD-ROMs.
//!
//! Buses: virtio disks are `virtio-blk-pci`; SCSI disks are `scsi-hd` on one `virtio-scsi-pci`
//! (`scsi0`); SATA disks and CD-ROMs sit on one explicit `ich9-ahci` controller (`sata0`,
//! ports `sata0.0`–`sata0.5`, SATA disks first) on both q35 and pc, which SeaBIOS and OVMF both
//! boot from; IDE disks (pc only) use the built-in PIIX buses `ide.0`/`ide.1`. The NoCloud seed
//! of a Linux guest is a `scsi-cd` on `scsi0` instead: every cloud kernel has virtio-scsi, while
//! some (Debian's `cloud` flavour) have no AHCI driver and would never see a SATA seed. Other
//! guests (Windows with cloudbase-init needs no extra driver for AHCI) keep the seed on SATA.

use serde_json::{Value, json};

use limiquantix_vm::model::{DiskBus, DiskSpec};

/// Id of the AHCI controller.
pub(super) const AHCI: &str = "sata0";
/// Id of the virtio-scsi controller.
pub(super) const SCSI: &str = "scsi0";

/// Bus positions handed out while walking the devices.
#[derive(Default)]
pub(super) struct Slots {
    ahci: usize,
    ide: usize,
}

impl Slots {
    /// The next AHCI port's bus name.
    pub(super) fn next_ahci(&mut self) -> String {
        let bus = format!("{AHCI}.{}", self.ahci);
        self.ahci += 1;
        bus
    }
}

/// The disk's `-device` value, attached to node `drive`.
pub(super) fn disk(d: &DiskSpec, drive: &str, bootindex: Option<u16>, slots: &mut Slots) -> Value {
    let mut v = match d.bus {
        DiskBus::Virtio => json!({ "driver": "virtio-blk-pci" }),
        DiskBus::Scsi => json!({ "driver": "scsi-hd", "bus": format!("{SCSI}.0") }),
        DiskBus::Sata => json!({ "driver": "ide-hd", "bus": slots.next_ahci() }),
        DiskBus::Ide => {
            let n = slots.ide;
            slots.ide += 1;
            json!({ "driver": "ide-hd", "bus": format!("ide.{}", n / 2), "unit": n % 2 })
        }
    };
    v["id"] = d.id.clone().into();
    v["drive"] = drive.into();
    if let Some(i) = bootindex {
        v["bootindex"] = i.into();
    }
    v
}

/// Where a CD-ROM is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CdBus {
    /// The next port of the AHCI controller (`ide-cd`).
    Ahci,
    /// The virtio-scsi controller (`scsi-cd`).
    Scsi,
}

/// A CD-ROM's `-device` value; `drive` is `None` for an empty drive.
pub(super) fn cdrom(
    id: &str,
    drive: Option<&str>,
    bootindex: Option<u16>,
    bus: CdBus,
    slots: &mut Slots,
) -> Value {
    let mut v = match bus {
        CdBus::Ahci => json!({ "driver": "ide-cd", "id": id, "bus": slots.next_ahci() }),
        CdBus::Scsi => json!({ "driver": "scsi-cd", "id": id, "bus": format!("{SCSI}.0") }),
    };
    if let Some(d) = drive {
        v["drive"] = d.into();
    }
    if let Some(i) = bootindex {
        v["bootindex"] = i.into();
    }
    v
}
