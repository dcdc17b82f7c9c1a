//! Boot order: which device boots first, and refusing a VM with nothing to boot.
//!
//! Rules (the QEMU command line also carries `-boot strict=on`, so only devices listed here are
//! ever tried, and NICs carry no option ROM unless network boot is on):
//! - When no device has an explicit `boot_index`, the order is automatic: disks with content
//!   (path or overlay) in definition order — the first one gets `bootindex=1` —, then blank disks,
//!   then bootable media CD-ROMs, then NICs when `boot.network_boot` is on.
//! - When any device has an explicit `boot_index`, exactly those devices are in the boot order
//!   (plus NICs after them when network boot is on).
//! - The seed CD-ROM is never in the boot order.
//! - A definition where nothing in the boot order can boot (only blank disks, no bootable CD-ROM
//!   with an ISO, no network boot) is refused with [`BootError::NothingBootable`], unless it
//!   boots a kernel directly (`direct_kernel`).

use limiquantix_vm::model::{CdromRole, VmDefinition};

use super::types::BootError;

/// The kind of device in a boot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootDevice {
    /// A disk.
    Disk,
    /// A CD-ROM.
    Cdrom,
    /// A NIC (network boot).
    Nic,
}

/// One device in boot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// What the device is.
    pub kind: BootDevice,
    /// Its device id.
    pub id: String,
    /// QEMU `bootindex` (1 = first).
    pub index: u16,
    /// Whether the device can hold something bootable (false for blank disks and empty drives).
    pub has_content: bool,
}

/// The `bootindex` of device `id` of `kind`, if it is in the boot order.
pub fn index_of(order: &[BootEntry], kind: BootDevice, id: &str) -> Option<u16> {
    order
        .iter()
        .find(|e| e.kind == kind && e.id == id)
        .map(|e| e.index)
}

/// Computes the boot order of a validated definition.
pub fn boot_order(def: &VmDefinition) -> Result<Vec<BootEntry>, BootError> {
    let explicit = def.disks.iter().any(|d| d.boot_index.is_some())
        || def.cdroms.iter().any(|c| c.boot_index.is_some());
    let entry = |kind, id: &str, has_content, index: u16| BootEntry {
        kind,
        id: id.to_owned(),
        index,
        has_content,
    };
    let mut order = Vec::new();
    if explicit {
        for d in &def.disks {
            if let Some(i) = d.boot_index {
                order.push(entry(BootDevice::Disk, &d.id, d.has_content(), i));
            }
        }
        for c in &def.cdroms {
            if let Some(i) = c.boot_index {
                order.push(entry(BootDevice::Cdrom, &c.id, c.path.is_some(), i));
            }
        }
        order.sort_by_key(|e| e.index);
    } else {
        for content in [true, false] {
            for d in def.disks.iter().filter(|d| d.has_content() == content) {
                order.push(entry(BootDevice::Disk, &d.id, content, 0));
            }
        }
        for c in &def.cdroms {
            if c.bootable && c.role == CdromRole::Media {
                order.push(entry(BootDevice::Cdrom, &c.id, c.path.is_some(), 0));
            }
        }
        for (n, e) in (1..).zip(order.iter_mut()) {
            e.index = n;
        }
    }
    if def.boot.network_boot {
        let mut next = order.last().map_or(1, |e| e.index.saturating_add(1));
        for n in &def.nics {
            order.push(entry(BootDevice::Nic, &n.id, true, next));
            next = next.saturating_add(1);
        }
    }
    // A directly booted kernel needs nothing from the boot order.
    if order.iter().any(|e| e.has_content) || def.direct_kernel.is_some() {
        Ok(order)
    } else {
        Err(BootError::NothingBootable {
            reason: nothing_bootable_reason(def, explicit),
        })
    }
}

fn nothing_bootable_reason(def: &VmDefinition, explicit: bool) -> String {
    let mut why = Vec::new();
    if explicit {
        why.push("the devices with a boot_index are blank disks or empty CD-ROM drives".into());
    }
    let blank: Vec<&str> = def
        .disks
        .iter()
        .filter(|d| !d.has_content())
        .map(|d| d.id.as_str())
        .collect();
    if def.disks.is_empty() {
        why.push("it has no disk".to_owned());
    } else if !blank.is_empty() && blank.len() == def.disks.len() {
        why.push(format!(
            "its only disks are blank ({}): a blank disk holds no operating system",
            blank.join(", ")
        ));
    }
    let bootable_cd = def
        .cdroms
        .iter()
        .any(|c| c.bootable && c.role == CdromRole::Media && c.path.is_some());
    if !bootable_cd {
        why.push(if def.cdroms.iter().any(|c| c.role == CdromRole::Seed) {
            "no bootable CD-ROM with an ISO (the cloud-init seed never boots)".to_owned()
        } else {
            "no bootable CD-ROM with an ISO".to_owned()
        });
    }
    if !def.boot.network_boot {
        why.push("network boot is off".to_owned());
    } else if def.nics.is_empty() {
        why.push("network boot is on but the VM has no NIC".to_owned());
    }
    why.join("; ")
}
