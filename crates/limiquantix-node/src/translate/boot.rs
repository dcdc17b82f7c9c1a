//! Booting a VM of a CreateVM request: firmware, guest OS family and boot order.

use super::fields::enum_value;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{self as m, VmDefinition};

/// Guest OS names (lowercase) that mean a Linux guest; an empty name does too.
const LINUX_GUESTS: &[&str] = &[
    "linux",
    "generic_linux",
    "debian",
    "ubuntu",
    "rhel",
    "centos",
    "rocky",
    "alma",
    "fedora",
    "suse",
    "opensuse",
    "arch",
    "alpine",
];

/// The model firmware of the request's `spec.firmware`.
pub(super) fn firmware(value: i32) -> Result<m::Firmware, ApiError> {
    let firmware = enum_value::<pb::Firmware>("spec.firmware", value, "0 BIOS, 1 UEFI, 2 AUTO")?;
    Ok(match firmware {
        pb::Firmware::Bios => m::Firmware::Bios,
        pb::Firmware::Uefi => m::Firmware::Uefi,
        pb::Firmware::Auto => m::Firmware::Auto,
    })
}

/// The guest OS family of the request's free-form `spec.guest_os` (case-insensitive):
/// `windows…` is Windows, an empty or known Linux name is Linux, anything else is Other.
pub(super) fn guest_os(s: &str) -> m::GuestOs {
    let s = s.to_ascii_lowercase();
    if s.starts_with("windows") {
        m::GuestOs::Windows
    } else if s.is_empty() || LINUX_GUESTS.contains(&s.as_str()) {
        m::GuestOs::Linux
    } else {
        m::GuestOs::Other
    }
}

/// Puts explicit boot positions on the devices when the request orders them: `boot_order`
/// starting with CDROM puts bootable CD-ROMs first; disks flagged `bootable` come before the
/// other disks. Without either, the model's automatic order applies (disks with content first,
/// then blank disks, then bootable CD-ROMs; network last and only when asked).
pub(super) fn apply_boot_order(
    def: &mut VmDefinition,
    spec: &pb::VmSpec,
    flagged: &[bool],
) -> Result<(), ApiError> {
    let order = boot_devices(spec)?;
    def.boot.network_boot = order.contains(&pb::BootDevice::Network);
    let cdrom_first = order.first() == Some(&pb::BootDevice::Cdrom);
    let any_flagged = flagged.iter().any(|&b| b);
    if !cdrom_first && !any_flagged {
        return Ok(());
    }
    let mut next = 1u16;
    if cdrom_first {
        number_cdroms(def, &mut next);
    }
    let disk_order: Vec<usize> = if any_flagged {
        (0..def.disks.len()).filter(|&i| flagged[i]).collect()
    } else {
        (0..def.disks.len())
            .filter(|&i| def.disks[i].has_content())
            .collect()
    };
    for i in disk_order {
        def.disks[i].boot_index = Some(next);
        next += 1;
    }
    if !cdrom_first {
        number_cdroms(def, &mut next);
    }
    Ok(())
}

/// The request's `boot_order`, checked, each device kept at its first position.
fn boot_devices(spec: &pb::VmSpec) -> Result<Vec<pb::BootDevice>, ApiError> {
    let mut order = Vec::new();
    for (i, v) in spec.boot_order.iter().enumerate() {
        let dev = enum_value::<pb::BootDevice>(
            &format!("spec.boot_order[{i}]"),
            *v,
            "0 DISK, 1 CDROM, 2 NETWORK",
        )?;
        if !order.contains(&dev) {
            order.push(dev);
        }
    }
    Ok(order)
}

/// Gives the bootable CD-ROMs the boot positions from `next` on, in their order.
fn number_cdroms(def: &mut VmDefinition, next: &mut u16) {
    for c in def.cdroms.iter_mut().filter(|c| c.bootable) {
        c.boot_index = Some(*next);
        *next += 1;
    }
}
