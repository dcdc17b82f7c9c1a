//! Settling an operation a crash (or a timeout) interrupted, before the next snapshot operation
//! and when the backend opens: a snapshot whose tag every disk has is completed in the tree,
//! one that some disks lack is removed from the disks that have it and dropped (never left
//! half-made and listed); an interrupted delete is finished; an interrupted revert of a stopped
//! VM's disks is applied again to every disk, and the snapshot made current.

use super::disks::{SnapDisk, named_disks, refused};
use super::live::Live;
use super::offline;
use super::store::{self, PendingOp, SnapshotFile};
use crate::backend::core::{QemuBackend, Result};
use crate::backend::vm::Vm;

impl QemuBackend {
    /// Loads the VM's `snapshots.json` and settles its pending operation, if any.
    pub(in crate::backend) async fn settle_snapshots(&self, vm: &Vm) -> Result<SnapshotFile> {
        let path = vm.paths.snapshots_json();
        let mut file = store::load(&path).await?;
        let Some(pending) = file.pending.clone() else {
            return Ok(file);
        };
        let rec = pending.record;
        let disks = named_disks(&vm.cell().def, &vm.paths, &rec.disks);
        let live = vm.cell().state.is_active();
        let qmp = if live {
            Some(self.qmp_of(vm).await?)
        } else {
            None
        };
        let live = qmp.as_deref().map(|qmp| Live { qmp, vm_id: &vm.id });
        if let Some(l) = &live {
            let running = l.our_jobs().await?;
            if !running.is_empty() {
                return Err(refused(format!(
                    "VM {}: snapshot job {} is still running in QEMU; try again when it is done",
                    vm.id,
                    running.join(", ")
                )));
            }
        }
        let qemu_img = &self.inner.config.qemu_img;
        let tags = match &live {
            Some(l) => l.tags(&disks).await?,
            None => offline::tags(&disks).await?,
        };
        let with_tag: Vec<&SnapDisk> = disks
            .iter()
            .zip(&tags)
            .filter(|(_, t)| t.contains(&rec.id))
            .map(|(d, _)| d)
            .collect();
        let complete = with_tag.len() == rec.disks.len();
        match pending.op {
            PendingOp::Create if complete => file.tree.insert(rec.clone()),
            PendingOp::Create | PendingOp::Delete => {
                for d in with_tag {
                    match &live {
                        Some(l) => l.delete_tag(&rec.id, d).await?,
                        None => offline::run(qemu_img, "-d", &rec.id, d).await?,
                    }
                }
                file.tree.remove(&rec.id);
            }
            PendingOp::Revert => {
                if live.is_none() && complete {
                    offline::apply_all(qemu_img, "-a", &rec.id, &disks).await?;
                }
                file.tree.current = Some(rec.id.clone());
            }
        }
        tracing::warn!(vm_id = %vm.id, snapshot = %rec.id, op = ?pending.op, complete,
            "settled an interrupted snapshot operation");
        file.pending = None;
        store::save(&path, &file).await?;
        Ok(file)
    }
}
