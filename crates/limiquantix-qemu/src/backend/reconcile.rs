//! Putting an adopted QEMU's disks and NICs in line with the definition.
//!
//! Hot-plug changes QEMU first and saves the definition last (detach likewise), so a daemon
//! killed in between leaves them apart. The definition wins, both ways:
//!
//! - a disk or NIC QEMU has and the definition does not (an attach that never answered) is
//!   unplugged, with its block nodes or netdev; block nodes without a device are removed. The
//!   caller never got a success, and the device's spec (where its file came from) is not
//!   something QEMU can tell back; the caller retries and gets the device again;
//! - a disk or NIC the definition has and QEMU does not (a detach that never answered, or a
//!   guest that released a device after its detach timed out) is plugged again: its file is
//!   still there (files are deleted only after the definition is saved), and the guest keeps
//!   what the definition promises until a detach succeeds.

use std::collections::BTreeSet;

use super::core::{QemuBackend, Result};
use super::plug::PLUGGABLE;
use super::vm::Vm;
use limiquantix_vm::model::DiskBus;

impl QemuBackend {
    /// Reconciles the devices of an adopted VM with its definition (see the module docs).
    pub(super) async fn reconcile_devices(&self, vm: &Vm) -> Result<()> {
        let def = vm.cell().def.clone();
        let known: BTreeSet<&str> = def
            .disks
            .iter()
            .map(|d| d.id.as_str())
            .chain(def.cdroms.iter().map(|c| c.id.as_str()))
            .chain(def.nics.iter().map(|n| n.id.as_str()))
            .collect();
        for (id, driver) in self.peripherals(vm).await? {
            if !PLUGGABLE.contains(&driver.as_str()) || known.contains(id.as_str()) {
                continue;
            }
            tracing::warn!(vm_id = %vm.id, device = %id, %driver, "unplugging a device the definition does not have");
            if driver.ends_with("-blk-pci") || driver == "scsi-hd" {
                self.unplug_disk(vm, &id).await?;
            } else {
                self.unplug_nic(vm, &id).await?;
            }
        }
        let orphans: BTreeSet<String> = self
            .block_nodes(vm)
            .await?
            .iter()
            .filter_map(|n| n.rsplit_once('-').map(|(id, _)| id.to_string()))
            .filter(|id| !known.contains(id.as_str()) && !id.starts_with("fw"))
            .collect();
        for id in orphans {
            tracing::warn!(vm_id = %vm.id, disk = %id, "removing block nodes of no disk");
            self.drop_nodes(vm, &id).await?;
        }
        let have = self.peripherals(vm).await?;
        for (i, d) in def.disks.iter().enumerate() {
            let pluggable = matches!(d.bus, DiskBus::Virtio | DiskBus::Scsi);
            if pluggable && !have.contains_key(&d.id) {
                tracing::warn!(vm_id = %vm.id, disk = %d.id, "plugging a disk of the definition QEMU lost");
                self.plug_disk(vm, &def, i).await?;
            }
        }
        for (i, n) in def.nics.iter().enumerate() {
            if !have.contains_key(&n.id) {
                tracing::warn!(vm_id = %vm.id, nic = %n.id, "plugging a NIC of the definition QEMU lost");
                self.plug_nic(vm, &def, i).await?;
            }
        }
        Ok(())
    }
}
