//! Forgetting a VM this node no longer runs (a migration's loser): its QEMU is ended and its
//! own directories removed. Disk files outside the VM's directory (pools) are never touched.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::core::{QemuBackend, Result, blocking, lock};
use crate::backend::stop::terminate;
use crate::backend::vm::Vm;

/// How long forgetting waits for the monitor to record the QEMU's end.
const FINISH_WAIT: Duration = Duration::from_secs(10);

impl QemuBackend {
    /// Ends the VM's QEMU (a requested stop: no event) and removes the VM: from the catalogue,
    /// its state directory (definition, seed, logs, disks made there) and its run directory.
    /// The caller holds the VM's catalog and operation locks.
    pub(in crate::backend) async fn forget(&self, vm: &Arc<Vm>) -> Result<()> {
        let (process, generation) = {
            let c = vm.cell();
            (c.process.clone(), c.generation)
        };
        if let Some(p) = process {
            vm.mark_stop_requested().await;
            terminate(&p).await;
            let _ = tokio::time::timeout(FINISH_WAIT, vm.wait_finished(generation)).await;
        }
        lock(&self.inner.vms).remove(&vm.id);
        let paths = vm.paths.clone();
        blocking(move || {
            for dir in [&paths.vm_dir, &paths.run_dir] {
                match std::fs::remove_dir_all(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove"),
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!(vm_id = %vm.id, "VM forgotten on this node");
        Ok(())
    }
}
