//! The checks of attaching and detaching disks and NICs every backend makes: limits, ids, buses
//! that can be hot-plugged, which disk is the boot disk, MACs of new NICs, and the definition
//! after the change (validated as a whole).

use std::path::PathBuf;

use crate::error::BackendError;
use crate::model::{CdromRole, DiskBus, MacAddr, NicSpec, VmDefinition, VmId};
use crate::model::{DiskSpec, check_device_id};

/// Most disks a VM may have.
pub const MAX_DISKS: usize = 16;
/// Most NICs a VM may have.
pub const MAX_NICS: usize = 8;

/// Disk or NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A disk.
    Disk,
    /// A network interface.
    Nic,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Disk => "disk",
            Self::Nic => "nic",
        })
    }
}

/// Where an attached disk's file goes and how the API names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskPlacement {
    /// The caller's id for the disk when it is not a device id (`disk-<unixnano>`).
    pub api_id: Option<String>,
    /// A pool directory for a disk the backend creates; `None`: the VM's own directory.
    pub dir: Option<PathBuf>,
    /// The volume id of the created disk in `dir` (its file is `<dir>/<volume>.<ext>`).
    pub volume: Option<String>,
}

/// The definition with `disk` added, validated; refuses a taken id, more than [`MAX_DISKS`]
/// disks, and (with `live`) a bus that cannot be hot-plugged.
pub fn plan_attach_disk(
    def: &VmDefinition,
    disk: DiskSpec,
    placement: &DiskPlacement,
    live: bool,
) -> Result<VmDefinition, BackendError> {
    check_new_id(def, &disk.id)?;
    if def.disks.len() >= MAX_DISKS {
        return Err(BackendError::Precondition(format!(
            "VM {} has {} disks, the most a VM may have ({MAX_DISKS}); detach one first",
            def.id,
            def.disks.len()
        )));
    }
    if live && matches!(disk.bus, DiskBus::Sata | DiskBus::Ide) {
        return Err(BackendError::Precondition(format!(
            "a {:?} disk cannot be hot-plugged (QEMU's AHCI and IDE controllers have no \
             hot-plug); use bus virtio or scsi, or stop VM {} first",
            disk.bus, def.id
        )));
    }
    let mut next = def.clone();
    let id = disk.id.clone();
    if let Some(a) = &placement.api_id {
        next.api_ids.insert(id.clone(), a.clone());
    }
    if let Some(dir) = &placement.dir {
        next.disk_dirs.insert(id.clone(), dir.clone());
    }
    if let Some(v) = &placement.volume {
        next.disk_volumes.insert(id.clone(), v.clone());
    }
    next.disks.push(disk);
    next.validate()?;
    Ok(next)
}

/// The definition with NIC `nic` added (its MAC chosen when it has none), validated; refuses a
/// taken id and more than [`MAX_NICS`] NICs.
pub fn plan_attach_nic(
    def: &VmDefinition,
    mut nic: NicSpec,
    api_id: Option<String>,
) -> Result<VmDefinition, BackendError> {
    check_new_id(def, &nic.id)?;
    if def.nics.len() >= MAX_NICS {
        return Err(BackendError::Precondition(format!(
            "VM {} has {} NICs, the most a VM may have ({MAX_NICS}); detach one first",
            def.id,
            def.nics.len()
        )));
    }
    let mut next = def.clone();
    nic.mac.get_or_insert_with(|| free_mac(def));
    if let Some(a) = api_id {
        next.api_ids.insert(nic.id.clone(), a);
    }
    next.nics.push(nic);
    next.validate()?;
    Ok(next)
}

/// The first derived MAC (by [`MacAddr::derive`]) that no NIC of `def` uses: stable for the
/// same definition, and never the address of a NIC that is still there.
pub fn free_mac(def: &VmDefinition) -> MacAddr {
    let used: Vec<MacAddr> = (0..def.nics.len()).filter_map(|i| def.nic_mac(i)).collect();
    (0..)
        .map(|i| MacAddr::derive(&def.id, i))
        .find(|m| !used.contains(m))
        .unwrap_or_else(|| MacAddr::derive(&def.id, 0))
}

/// The index of disk `disk_id`, which may be detached: not a CD-ROM, not the boot disk (see
/// [`boot_disk`]).
pub fn detachable_disk(def: &VmDefinition, disk_id: &str) -> Result<usize, BackendError> {
    if let Some(c) = def.cdroms.iter().find(|c| c.id == disk_id) {
        return Err(BackendError::Precondition(match c.role {
            CdromRole::Seed => format!(
                "{disk_id:?} is the cloud-init seed CD-ROM of VM {}: it is not detachable",
                def.id
            ),
            CdromRole::Media => format!(
                "{disk_id:?} is a CD-ROM of VM {}: eject its medium with ChangeMedia",
                def.id
            ),
        }));
    }
    let index = def
        .disks
        .iter()
        .position(|d| d.id == disk_id)
        .ok_or_else(|| not_found(&def.id, "disk", disk_id))?;
    if boot_disk(def) == Some(index) {
        return Err(BackendError::Precondition(format!(
            "{disk_id:?} is the boot disk of VM {}: it is not detachable",
            def.id
        )));
    }
    Ok(index)
}

/// The index of the boot disk: the disk with the lowest explicit `boot_index` when any disk
/// has one, else the first disk with content (an image or an overlay: the automatic boot
/// order's first device), else the first disk.
pub fn boot_disk(def: &VmDefinition) -> Option<usize> {
    let explicit = def
        .disks
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.boot_index.map(|b| (b, i)))
        .min();
    if let Some((_, i)) = explicit {
        return Some(i);
    }
    def.disks
        .iter()
        .position(DiskSpec::has_content)
        .or((!def.disks.is_empty()).then_some(0))
}

/// The index of NIC `nic_id`.
pub fn nic_index(def: &VmDefinition, nic_id: &str) -> Result<usize, BackendError> {
    def.nics
        .iter()
        .position(|n| n.id == nic_id)
        .ok_or_else(|| not_found(&def.id, "nic", nic_id))
}

/// The definition without device `device_id` (a disk or NIC) and its API id and placement.
pub fn without_device(def: &VmDefinition, device_id: &str) -> VmDefinition {
    let mut next = def.clone();
    next.disks.retain(|d| d.id != device_id);
    next.nics.retain(|n| n.id != device_id);
    next.api_ids.remove(device_id);
    next.disk_dirs.remove(device_id);
    next.disk_volumes.remove(device_id);
    next
}

fn check_new_id(def: &VmDefinition, id: &str) -> Result<(), BackendError> {
    check_device_id(id).map_err(BackendError::Invalid)?;
    let taken = def.disks.iter().any(|d| d.id == id)
        || def.cdroms.iter().any(|c| c.id == id)
        || def.nics.iter().any(|n| n.id == id);
    if taken {
        return Err(BackendError::Invalid(format!(
            "VM {} already has a device {id:?}",
            def.id
        )));
    }
    Ok(())
}

fn not_found(vm_id: &VmId, kind: &'static str, device_id: &str) -> BackendError {
    BackendError::DeviceNotFound {
        vm_id: vm_id.clone(),
        kind,
        device_id: device_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DiskSource, fixtures};

    fn blank(id: &str) -> DiskSpec {
        DiskSpec {
            id: id.into(),
            source: DiskSource::Blank {
                size_bytes: 1 << 30,
            },
            bus: DiskBus::Virtio,
            format: Default::default(),
            readonly: false,
            boot_index: None,
            limits: None,
        }
    }

    #[test]
    fn attach_checks_ids_limits_and_buses() {
        let def = fixtures::cloud_vm();
        let p = DiskPlacement::default();
        let next = plan_attach_disk(&def, blank("data1"), &p, true).unwrap();
        assert_eq!(next.disks.last().unwrap().id, "data1");
        let taken = def.disks[0].id.clone();
        assert!(matches!(
            plan_attach_disk(&def, blank(&taken), &p, true),
            Err(BackendError::Invalid(_))
        ));
        assert!(plan_attach_disk(&def, blank("Bad_Id"), &p, false).is_err());
        let sata = DiskSpec {
            bus: DiskBus::Sata,
            ..blank("s1")
        };
        let e = plan_attach_disk(&def, sata.clone(), &p, true).unwrap_err();
        assert!(e.to_string().contains("cannot be hot-plugged"), "{e}");
        plan_attach_disk(&def, sata, &p, false).unwrap();
        let mut full = def.clone();
        for i in full.disks.len()..MAX_DISKS {
            full.disks.push(blank(&format!("d{i}")));
        }
        let e = plan_attach_disk(&full, blank("one-more"), &p, false).unwrap_err();
        assert!(matches!(e, BackendError::Precondition(_)), "{e}");
    }

    #[test]
    fn the_boot_disk_and_cdroms_are_not_detachable() {
        let mut def = fixtures::cloud_vm();
        def.disks.push(blank("data1"));
        let boot = def.disks[boot_disk(&def).unwrap()].id.clone();
        assert!(detachable_disk(&def, &boot).is_err());
        assert_eq!(detachable_disk(&def, "data1").unwrap(), def.disks.len() - 1);
        assert!(matches!(
            detachable_disk(&def, "nope"),
            Err(BackendError::DeviceNotFound { .. })
        ));
        if let Some(c) = def.cdroms.first() {
            assert!(detachable_disk(&def, &c.id).is_err());
        }
        // An explicit boot index wins over the automatic order.
        def.disks.last_mut().unwrap().boot_index = Some(1);
        assert_eq!(boot_disk(&def), Some(def.disks.len() - 1));
    }

    #[test]
    fn new_nics_get_a_mac_no_other_nic_has() {
        let mut def = fixtures::cloud_vm();
        def.fill_defaults();
        let nic = NicSpec {
            id: "nic9".into(),
            mac: None,
            model: Default::default(),
            network: Default::default(),
        };
        let next = plan_attach_nic(&def, nic.clone(), Some("nic-123".into())).unwrap();
        let mac = next.nics.last().unwrap().mac.unwrap();
        assert!(def.nics.iter().all(|n| n.mac != Some(mac)));
        assert_eq!(next.api_id("nic9"), "nic-123");
        // The same definition gives the same MAC.
        let again = plan_attach_nic(&def, nic, None).unwrap();
        assert_eq!(again.nics.last().unwrap().mac, Some(mac));
        let back = without_device(&next, "nic9");
        assert_eq!(back.nics, def.nics);
        assert!(back.api_ids.is_empty());
    }
}
