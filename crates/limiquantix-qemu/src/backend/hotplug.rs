//! Disk hot-plug: attach and detach, live over QMP while QEMU runs (or is paused), on the
//! definition alone while it does not.
//!
//! Attach: the file (blank or overlay) is created, then hot-plugged (`object-add` of a throttle
//! group, `blockdev-add` of the file and format [and throttle] nodes, `device_add` on a free
//! spare root port or the virtio-scsi controller), then the definition is saved. Detach:
//! `device_del`, the guest releases the device (`DEVICE_DELETED`), `blockdev-del`, then the
//! definition is saved, then the file is deleted when asked. A daemon killed between two steps
//! leaves QEMU and the definition apart; adoption puts QEMU back in line with the definition
//! (`reconcile`).

use std::path::Path;

use tracing::Instrument;

use super::core::{QemuBackend, Result, blocking};
use super::types::QemuError;
use super::vm::Vm;
use crate::argv::{SCSI_CONTROLLER, disk_plug, scsi_controller};
use crate::fault;
use crate::paths::RuntimePaths;
use crate::persist;
use limiquantix_vm::VmEventKind;
use limiquantix_vm::hotplug::{
    DeviceKind, DiskPlacement, detachable_disk, plan_attach_disk, without_device,
};
use limiquantix_vm::model::{DiskBus, DiskSource, DiskSpec, VmDefinition, VmId};
use limiquantix_vm::state::VmOp;

impl QemuBackend {
    /// Attaches `disk` to VM `id` (see [`limiquantix_vm::VmBackend::attach_disk`]). A disk the
    /// backend creates goes to `placement.dir` as a volume, else into the VM directory as
    /// `<disk id>.<ext>`. Returns the new definition.
    pub async fn attach_disk(
        &self,
        id: &VmId,
        disk: DiskSpec,
        mut placement: DiskPlacement,
    ) -> Result<VmDefinition> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("attach_disk", vm_id = %id, disk = %disk.id);
        async {
            let _op = vm.op.lock().await;
            let live = Self::check(&vm, VmOp::AttachDisk)?.is_active();
            let def = vm.cell().def.clone();
            if disk.is_created() && placement.dir.is_none() {
                // Named by the disk id, so no later detach renumbers it.
                placement.dir = Some(vm.paths.vm_dir.clone());
                placement.volume = Some(disk.id.clone());
            }
            let next = plan_attach_disk(&def, disk, &placement, live)?;
            let index = next.disks.len() - 1;
            let file = vm.paths.created_disk(&next, index);
            if let Some(f) = &file {
                let qemu_img = &self.inner.config.qemu_img;
                create_file(qemu_img, &next.disks[index], f, &vm.paths.vm_dir).await?;
                fault::point("attachdisk:after-file");
            }
            if live && let Err(e) = self.plug_disk(&vm, &next, index).await {
                if let Some(f) = file {
                    let _ = blocking(move || Ok(std::fs::remove_file(f))).await;
                }
                return Err(e);
            }
            self.save(&vm, next.clone()).await?;
            let kind = DeviceKind::Disk;
            let device_id = next.disks[index].id.clone();
            tracing::info!(live, "disk attached");
            self.inner
                .emit(id, VmEventKind::DeviceAttached { kind, device_id });
            Ok(next)
        }
        .instrument(span)
        .await
    }

    /// Detaches disk `disk_id` of VM `id` (see [`limiquantix_vm::VmBackend::detach_disk`]).
    pub async fn detach_disk(&self, id: &VmId, disk_id: &str, delete_file: bool) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("detach_disk", vm_id = %id, disk = disk_id, delete_file);
        async {
            let _op = vm.op.lock().await;
            let live = Self::check(&vm, VmOp::DetachDisk)?.is_active();
            let def = vm.cell().def.clone();
            let index = detachable_disk(&def, disk_id)?;
            let file = vm.paths.created_disk(&def, index);
            if live {
                self.unplug_disk(&vm, disk_id).await?;
            }
            self.save(&vm, pin_names(&vm.paths, &def, index)).await?;
            if let Some(f) = file.filter(|_| delete_file) {
                tracing::info!(file = %f.display(), "deleting the detached disk's file");
                blocking(move || match std::fs::remove_file(&f) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(QemuError::Io { path: f, source: e })
                    }
                    _ => Ok(()),
                })
                .await?;
            }
            tracing::info!(live, "disk detached");
            let (kind, device_id) = (DeviceKind::Disk, disk_id.to_string());
            self.inner
                .emit(id, VmEventKind::DeviceDetached { kind, device_id });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Saves `def` as the VM's definition (atomically) and keeps it in memory.
    pub(super) async fn save(&self, vm: &Vm, def: VmDefinition) -> Result<()> {
        let path = vm.paths.vm_json();
        let saved = def.clone();
        blocking(move || Ok(persist::save_definition(&path, &saved)?)).await?;
        vm.cell().def = def;
        Ok(())
    }

    /// Hot-plugs disk number `index` of `def` into the running QEMU. Leftover nodes of an
    /// earlier attempt (a daemon killed part way) are removed first; a failed `device_add`
    /// removes the nodes again.
    pub(super) async fn plug_disk(&self, vm: &Vm, def: &VmDefinition, index: usize) -> Result<()> {
        let d = &def.disks[index];
        let plug = disk_plug(def, &vm.paths, index)?;
        self.drop_nodes(vm, &d.id).await?;
        for o in plug.objects {
            self.qmp_ask(vm, "object-add", Some(o)).await?;
        }
        for n in plug.nodes {
            self.qmp_ask(vm, "blockdev-add", Some(n)).await?;
        }
        fault::point("attachdisk:after-blockdev");
        let mut device = plug.device;
        let bus = match d.bus {
            DiskBus::Scsi => self.scsi_bus(vm, def).await,
            _ => self.plug_bus(vm, def.effective_machine()).await,
        };
        let added = match bus {
            Ok(Some(bus)) if d.bus != DiskBus::Scsi => {
                device["bus"] = bus.into();
                self.qmp_ask(vm, "device_add", Some(device)).await
            }
            Ok(_) => self.qmp_ask(vm, "device_add", Some(device)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            let _ = self.drop_nodes(vm, &d.id).await;
            return Err(e);
        }
        fault::point("attachdisk:after-device");
        Ok(())
    }

    /// Makes sure the virtio-scsi controller exists (hot-plugging it on a spare port when the
    /// VM booted without one).
    async fn scsi_bus(&self, vm: &Vm, def: &VmDefinition) -> Result<Option<String>> {
        if !self.peripherals(vm).await?.contains_key(SCSI_CONTROLLER) {
            let mut ctl = scsi_controller();
            if let Some(bus) = self.plug_bus(vm, def.effective_machine()).await? {
                ctl["bus"] = bus.into();
            }
            self.qmp_ask(vm, "device_add", Some(ctl)).await?;
            tracing::info!(vm_id = %vm.id, "virtio-scsi controller hot-plugged");
        }
        Ok(None)
    }

    /// Unplugs disk `disk_id` from the running QEMU when it is there, then removes its nodes.
    pub(super) async fn unplug_disk(&self, vm: &Vm, disk_id: &str) -> Result<()> {
        if self.peripherals(vm).await?.contains_key(disk_id) {
            self.unplug(vm, disk_id).await?;
            fault::point("detachdisk:after-device-del");
        }
        self.drop_nodes(vm, disk_id).await?;
        fault::point("detachdisk:after-blockdev-del");
        Ok(())
    }
}

/// Creates the file of an attached disk. A file of that name in the VM directory is a leftover
/// of an attach the daemon did not finish (the disk is not in the definition) and is replaced;
/// anywhere else (a pool) an existing file is refused.
async fn create_file(qemu_img: &Path, d: &DiskSpec, file: &Path, vm_dir: &Path) -> Result<()> {
    if file.parent() == Some(vm_dir) {
        let f = file.to_path_buf();
        blocking(move || {
            if std::fs::remove_file(&f).is_ok() {
                tracing::warn!(file = %f.display(), "removed the file of an unfinished attach");
            }
            Ok(())
        })
        .await?;
    }
    match &d.source {
        DiskSource::Path { .. } => {}
        DiskSource::Overlay {
            backing,
            size_bytes,
        } => {
            limiquantix_storage::create_overlay(qemu_img, backing, file, *size_bytes).await?;
        }
        DiskSource::Blank { size_bytes } => {
            limiquantix_storage::create_blank(qemu_img, file, d.format, *size_bytes).await?;
        }
    }
    Ok(())
}

/// The definition without disk number `removed`. Created disks after it whose file is named by
/// their position (`disk-<n>`) get that name pinned (as a directory and volume name), so
/// removing one disk never renames another's file.
fn pin_names(paths: &RuntimePaths, def: &VmDefinition, removed: usize) -> VmDefinition {
    let mut next = def.clone();
    for (i, d) in def.disks.iter().enumerate().skip(removed + 1) {
        if def.disk_volumes.contains_key(&d.id) {
            continue;
        }
        let Some(file) = paths.created_disk(def, i) else {
            continue;
        };
        if let (Some(dir), Some(stem)) = (file.parent(), file.file_stem()) {
            next.disk_dirs.insert(d.id.clone(), dir.to_path_buf());
            let stem = stem.to_string_lossy().into_owned();
            next.disk_volumes.insert(d.id.clone(), stem);
        }
    }
    without_device(&next, &def.disks[removed].id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_vm::model::fixtures;

    #[test]
    fn detaching_a_disk_renames_no_other_file() {
        let mut def = fixtures::cloud_vm();
        let paths = RuntimePaths::new(Path::new("/s"), Path::new("/r"), &def.id);
        for id in ["d1", "d2"] {
            def.disks.push(DiskSpec {
                id: id.into(),
                source: DiskSource::Blank {
                    size_bytes: 1 << 30,
                },
                ..def.disks[0].clone()
            });
        }
        let before = paths.created_disk(&def, 2).unwrap();
        assert!(before.ends_with("disk-2.qcow2"));
        let next = pin_names(&paths, &def, 1);
        assert_eq!(next.disks.len(), 2);
        assert_eq!(paths.created_disk(&next, 1).unwrap(), before);
        assert_eq!(paths.created_disk(&next, 0), paths.created_disk(&def, 0));
        next.validate().unwrap();
    }
}
