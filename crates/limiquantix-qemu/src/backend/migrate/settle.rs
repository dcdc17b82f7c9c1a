//! A source backend that opens after its daemon went away mid-migration: a migration nobody
//! drives any more is cancelled (the guest runs on here; the target's prepared VM is given up
//! there when its hypervisor ends or its token expires), and a guest stopped after a completed
//! migration that was never handed over is resumed. Once the hand-over may have happened (the
//! marker is written before the target is asked to take the guest), the guest is left paused:
//! resuming it could run it on two nodes.

use std::sync::Arc;

use super::qmp::{Reading, read};
use crate::backend::core::QemuBackend;
use crate::backend::vm::Vm;
use crate::paths::RuntimePaths;
use limiquantix_vm::state::VmState;

/// The marker of a completed outgoing migration whose hand-over may be under way.
pub(super) fn handover_marker(paths: &RuntimePaths) -> std::path::PathBuf {
    paths.vm_dir.join("outgoing-handover")
}

impl QemuBackend {
    /// At open, for an adopted QEMU (see the module documentation).
    pub(in crate::backend) async fn settle_outgoing(&self, vm: &Arc<Vm>) {
        if vm.cell().process.is_none() {
            return;
        }
        let Ok(q) = self.qmp_of(vm).await else { return };
        let (Ok(status), Ok(info)) = (
            q.query_status().await,
            q.execute("query-migrate", None).await,
        ) else {
            return;
        };
        let handed = tokio::fs::try_exists(handover_marker(&vm.paths))
            .await
            .unwrap_or(true);
        match (status.as_str(), read(&info)) {
            ("postmigrate", _) if handed => {
                tracing::warn!(vm_id = %vm.id, "a completed migration may have been handed over; the guest stays paused here");
            }
            ("postmigrate", _) => self.resume_unhanded(vm, &q).await,
            (_, Reading::Going(p)) if info["status"].as_str().is_some_and(|s| s != "none") => {
                let _ = q.execute("migrate_cancel", None).await;
                tracing::warn!(vm_id = %vm.id, phase = ?p.phase, "a migration nobody drives any more was cancelled; the guest stays here");
            }
            _ => {}
        }
    }

    /// Resumes a guest whose completed migration was never handed over.
    async fn resume_unhanded(&self, vm: &Vm, q: &crate::qmp::QmpClient) {
        if q.execute("cont", None).await.is_ok() {
            vm.cell().state = VmState::Running;
            tracing::warn!(vm_id = %vm.id, "a migration was never handed over; the guest runs here again");
        }
    }
}
