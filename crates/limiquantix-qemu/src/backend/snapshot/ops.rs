//! The snapshot operations of [`QemuBackend`]: each holds the VM's lock, checks the state
//! table, settles an interrupted operation first, records what it starts in `snapshots.json`,
//! does it, and records the result.

use std::sync::Arc;

use tracing::Instrument;

use super::disks::{SnapDisk, named_disks, refused, writable_disks};
use super::live::{Live, frozen};
use super::offline;
use super::store::{self, Pending, PendingOp, SnapshotFile};
use crate::backend::core::{QemuBackend, Result};
use crate::backend::types::QemuError;
use crate::backend::vm::Vm;
use crate::fault;
use limiquantix_vm::model::VmId;
use limiquantix_vm::snapshot::SnapshotRecord;
use limiquantix_vm::state::{VmOp, VmState};
use limiquantix_vm::{SnapshotInfo, SnapshotRequest, VmEventKind};

impl QemuBackend {
    /// Takes a snapshot: with memory (`snapshot-save` job) while QEMU runs unless
    /// `disk_only` (then one atomic `transaction`, with the filesystems frozen when
    /// `quiesce`), with `qemu-img snapshot -c` on each disk while it does not.
    pub async fn create_snapshot(&self, id: &VmId, req: SnapshotRequest) -> Result<SnapshotInfo> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("create_snapshot", vm_id = %id, name = %req.name);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::Snapshot)?;
            let mut file = self.settle_snapshots(&vm).await?;
            file.tree.check_new_name(id, &req.name)?;
            let disks = writable_disks(id, &vm.cell().def, &vm.paths)?;
            let memory = state.is_active() && !req.disk_only;
            let mut rec = file.tree.record(&req, state, memory);
            rec.disks = disks.iter().map(|d| d.id.clone()).collect();
            self.begin(&vm, &mut file, PendingOp::Create, &rec).await?;
            fault::point("snapshot:create-after-begin");
            let done = self.take(&vm, state, &req, &rec, &disks).await;
            fault::point("snapshot:create-after-take");
            if let Err(e) = done {
                tracing::warn!(error = %e, "snapshot failed; undoing what was made");
                if let Err(s) = self.settle_snapshots(&vm).await {
                    tracing::warn!(error = %s, "could not undo the snapshot yet");
                }
                return Err(e);
            }
            file.tree.insert(rec.clone());
            self.finish(&vm, &mut file).await?;
            tracing::info!(snapshot = %rec.id, memory, %state, "snapshot taken");
            let snapshot_id = rec.id.clone();
            self.inner
                .emit(id, VmEventKind::SnapshotCreated { snapshot_id });
            let info = file.tree.list().into_iter().find(|s| s.id == rec.id);
            info.ok_or_else(|| QemuError::Task("the new snapshot is not in the tree".into()))
        }
        .instrument(span)
        .await
    }

    /// The work of [`QemuBackend::create_snapshot`] on the disks (and memory).
    async fn take(
        &self,
        vm: &Vm,
        state: VmState,
        req: &SnapshotRequest,
        rec: &SnapshotRecord,
        disks: &[SnapDisk],
    ) -> Result<()> {
        if !state.is_active() {
            return offline::apply_all(&self.inner.config.qemu_img, "-c", &rec.id, disks).await;
        }
        let qmp = self.qmp_of(vm).await?;
        let live = Live {
            qmp: &qmp,
            vm_id: &vm.id,
        };
        if rec.memory {
            if req.quiesce {
                tracing::info!("quiesce skipped: a memory snapshot is consistent by itself");
            }
            return live.job("snapshot-save", &rec.id, disks).await;
        }
        if req.quiesce {
            frozen(&vm.id, &vm.qga, live.disk_only(&rec.id, disks)).await
        } else {
            live.disk_only(&rec.id, disks).await
        }
    }

    /// The VM's snapshots, oldest first, the current one marked.
    pub async fn list_snapshots(&self, id: &VmId) -> Result<Vec<SnapshotInfo>> {
        let vm = self.vm(id)?;
        let _op = vm.op.lock().await;
        Ok(self.settle_snapshots(&vm).await?.tree.list())
    }

    /// Goes back to snapshot `snapshot_id` (see [`limiquantix_vm::VmBackend::revert_snapshot`]):
    /// a memory snapshot through the `snapshot-load` job (a stopped VM is started paused for it,
    /// then resumed unless it was paused when the snapshot was taken), a disk-only one with
    /// `qemu-img snapshot -a` on a stopped VM.
    pub async fn revert_snapshot(
        &self,
        id: &VmId,
        snapshot_id: &str,
        stop_if_running: bool,
    ) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("revert_snapshot", vm_id = %id, snapshot = snapshot_id);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::RevertSnapshot)?;
            let mut file = self.settle_snapshots(&vm).await?;
            let rec = file.tree.get(id, snapshot_id)?.clone();
            let disks = named_disks(&vm.cell().def, &vm.paths, &rec.disks);
            if state.is_active() && !rec.memory && !stop_if_running {
                return Err(refused(format!(
                    "VM {id} is {state} and snapshot {snapshot_id} holds no memory: reverting \
                     its disks needs the VM stopped (stop it, or ask to stop it when running)"
                )));
            }
            self.begin(&vm, &mut file, PendingOp::Revert, &rec).await?;
            fault::point("snapshot:revert-after-begin");
            self.go_back(&vm, state, &rec, &disks).await?;
            file.tree.current = Some(rec.id.clone());
            self.finish(&vm, &mut file).await?;
            tracing::info!(memory = rec.memory, "reverted to the snapshot");
            let snapshot_id = rec.id.clone();
            self.inner
                .emit(id, VmEventKind::SnapshotReverted { snapshot_id });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The work of [`QemuBackend::revert_snapshot`].
    async fn go_back(
        &self,
        vm: &Arc<Vm>,
        state: VmState,
        rec: &SnapshotRecord,
        disks: &[SnapDisk],
    ) -> Result<()> {
        let qemu_img = &self.inner.config.qemu_img;
        if !rec.memory {
            if state.is_active() {
                tracing::info!("forcing the VM off to revert a disk-only snapshot");
                self.force_stop(&vm.id).await?;
            }
            return offline::apply_all(qemu_img, "-a", &rec.id, disks).await;
        }
        if !state.is_active() {
            self.start_locked(vm, true).await?;
        }
        let qmp = self.qmp_of(vm).await?;
        let live = Live {
            qmp: &qmp,
            vm_id: &vm.id,
        };
        if let Err(e) = live.job("snapshot-load", &rec.id, disks).await {
            if !state.is_active() {
                let _ = self.force_stop(&vm.id).await;
            }
            return Err(e);
        }
        if !state.is_active() {
            if rec.vm_state == VmState::Paused {
                vm.cell().state = VmState::Paused;
            } else {
                self.qmp_call(vm, "cont", None).await?;
            }
        }
        Ok(())
    }

    /// Deletes snapshot `snapshot_id` from every disk (`snapshot-delete` job while QEMU runs,
    /// `qemu-img snapshot -d` while it does not) and from the tree; its children get its parent.
    pub async fn delete_snapshot(&self, id: &VmId, snapshot_id: &str) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("delete_snapshot", vm_id = %id, snapshot = snapshot_id);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::DeleteSnapshot)?;
            let mut file = self.settle_snapshots(&vm).await?;
            let rec = file.tree.get(id, snapshot_id)?.clone();
            let disks = named_disks(&vm.cell().def, &vm.paths, &rec.disks);
            self.begin(&vm, &mut file, PendingOp::Delete, &rec).await?;
            if state.is_active() {
                let qmp = self.qmp_of(&vm).await?;
                let live = Live {
                    qmp: &qmp,
                    vm_id: &vm.id,
                };
                live.job("snapshot-delete", &rec.id, &disks).await?;
            } else {
                let tags = offline::tags(&disks).await?;
                let with: Vec<SnapDisk> = disks
                    .into_iter()
                    .zip(tags)
                    .filter(|(_, t)| t.contains(&rec.id))
                    .map(|(d, _)| d)
                    .collect();
                offline::apply_all(&self.inner.config.qemu_img, "-d", &rec.id, &with).await?;
            }
            fault::point("snapshot:delete-after-take");
            file.tree.remove(&rec.id);
            self.finish(&vm, &mut file).await?;
            tracing::info!("snapshot deleted");
            let snapshot_id = rec.id.clone();
            self.inner
                .emit(id, VmEventKind::SnapshotDeleted { snapshot_id });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Records `op` on `rec` as pending, before any disk is touched.
    async fn begin(
        &self,
        vm: &Vm,
        file: &mut SnapshotFile,
        op: PendingOp,
        rec: &SnapshotRecord,
    ) -> Result<()> {
        file.pending = Some(Pending {
            op,
            record: rec.clone(),
        });
        store::save(&vm.paths.snapshots_json(), file).await
    }

    /// Records the finished operation.
    async fn finish(&self, vm: &Vm, file: &mut SnapshotFile) -> Result<()> {
        file.pending = None;
        store::save(&vm.paths.snapshots_json(), file).await
    }
}
