//! Stopping, pausing, resuming and resetting a VM.

use std::time::Duration;

use tracing::Instrument;

use super::core::{QemuBackend, Result, TERM_GRACE};
use super::types::{QemuError, StopOutcome};
use crate::process::{QemuProcess, Signal};
use limiquantix_vm::model::VmId;
use limiquantix_vm::state::{VmOp, VmState, valid_transition};

impl QemuBackend {
    /// Graceful stop: presses the ACPI power button and waits up to `timeout` (the configured
    /// default when `None`) for the guest to power off, then terminates QEMU.
    pub async fn stop(&self, id: &VmId, timeout: Option<Duration>) -> Result<StopOutcome> {
        let vm = self.vm(id)?;
        let timeout = timeout.unwrap_or(self.inner.config.stop_timeout);
        let span = tracing::info_span!("stop", vm_id = %id);
        async {
            let _op = vm.op.lock().await;
            let prev = Self::check(&vm, VmOp::Stop)?;
            let (proc_, generation) = {
                let mut c = vm.cell();
                c.state = VmState::Stopping;
                (c.process.clone(), c.generation)
            };
            let Some(proc_) = proc_ else {
                return Ok(StopOutcome::AlreadyStopped);
            };
            vm.mark_stop_requested().await;
            if prev == VmState::Paused {
                // A paused guest cannot see the power button.
                let _ = self.qmp_call(&vm, "cont", None).await;
            }
            if let Err(e) = self.qmp_call(&vm, "system_powerdown", None).await {
                tracing::warn!(error = %e, "system_powerdown failed; forcing off");
            }
            let outcome = if proc_.wait_timeout(timeout).await.is_some() {
                StopOutcome::Graceful
            } else {
                tracing::warn!(?timeout, "guest did not power off in time; forcing off");
                terminate(&proc_).await;
                StopOutcome::Forced
            };
            vm.wait_finished(generation).await;
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    /// Immediate stop: SIGTERM to QEMU (which flushes its disks), SIGKILL if it lingers. Does
    /// not wait behind a running graceful stop or start.
    pub async fn force_stop(&self, id: &VmId) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("force_stop", vm_id = %id);
        async {
            let (proc_, generation) = {
                let mut c = vm.cell();
                let refused = QemuError::InvalidTransition {
                    vm_id: vm.id.clone(),
                    state: c.state,
                    op: VmOp::ForceStop,
                };
                // A start that has not spawned QEMU yet has nothing to stop.
                let Some(p) = c.process.clone() else {
                    return Err(refused);
                };
                if valid_transition(c.state, VmOp::ForceStop).is_none() {
                    return Err(refused);
                }
                c.state = VmState::Stopping;
                (p, c.generation)
            };
            vm.mark_stop_requested().await;
            terminate(&proc_).await;
            vm.wait_finished(generation).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Hard reset (`system_reset`).
    pub async fn reboot(&self, id: &VmId) -> Result<()> {
        self.simple_op(id, VmOp::Reboot, "system_reset", None).await
    }

    /// Pauses the vCPUs (`stop`).
    pub async fn pause(&self, id: &VmId) -> Result<()> {
        self.simple_op(id, VmOp::Pause, "stop", Some(VmState::Paused))
            .await
    }

    /// Resumes the vCPUs (`cont`).
    pub async fn resume(&self, id: &VmId) -> Result<()> {
        self.simple_op(id, VmOp::Resume, "cont", Some(VmState::Running))
            .await
    }

    async fn simple_op(
        &self,
        id: &VmId,
        op: VmOp,
        command: &str,
        then: Option<VmState>,
    ) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("vm_op", vm_id = %id, op = %op);
        async {
            let _op = vm.op.lock().await;
            Self::check(&vm, op)?;
            self.qmp_call(&vm, command, None).await?;
            if let Some(s) = then {
                let mut c = vm.cell();
                if c.state.is_active() && c.state != VmState::Stopping {
                    c.state = s;
                    c.paused_as = None;
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// SIGTERM, then SIGKILL if QEMU is still there after [`TERM_GRACE`].
pub(super) async fn terminate(proc_: &QemuProcess) {
    proc_.signal(Signal::Term);
    if proc_.wait_timeout(TERM_GRACE).await.is_none() {
        proc_.signal(Signal::Kill);
        proc_.wait().await;
    }
}
