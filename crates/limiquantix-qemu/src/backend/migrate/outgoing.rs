//! The source's half of a live migration: the guest's memory and device state sent to the
//! target's incoming socket with progress from `query-migrate`; then the VM given away
//! ([`QemuBackend::complete_outgoing`]) or the guest taken back
//! ([`QemuBackend::cancel_outgoing`]). A failure leaves the guest running here, in the same
//! QEMU process.

use std::time::Duration;

use serde_json::json;
use tracing::Instrument;

use super::qmp::{Reading, capabilities, parameters, read};
use super::settle::handover_marker;
use super::tls::Endpoint;
use crate::backend::core::{QemuBackend, Result, blocking, io_err};
use crate::backend::types::QemuError;
use crate::backend::vm::Vm;
use limiquantix_vm::migration::{
    MigrationParams, MigrationPhase, MigrationProgress, ProgressSender,
};
use limiquantix_vm::model::VmId;
use limiquantix_vm::state::{VmOp, VmState};
use limiquantix_vm::{BackendError, VmEventKind};

/// How often `query-migrate` is asked (cheap; the switchover is seen at most this late).
const POLL: Duration = Duration::from_millis(20);
/// How many more polls a completed migration gets to report its downtime.
const SETTLE_POLLS: u32 = 100;
/// How long a cancelled migration gets to wind down.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

fn failed(vm_id: &VmId, why: &str) -> QemuError {
    QemuError::Refused(BackendError::Precondition(format!(
        "the migration of VM {vm_id} failed: {why}; the guest runs on this node"
    )))
}

impl QemuBackend {
    /// Sends the guest to `params.uri` (see [`limiquantix_vm::VmBackend::migrate`]).
    pub async fn migrate(
        &self,
        id: &VmId,
        params: MigrationParams,
        progress: ProgressSender,
    ) -> Result<MigrationProgress> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("migrate", vm_id = %id);
        async {
            let _op = vm.op.lock().await;
            let before = Self::check(&vm, VmOp::Migrate)?;
            vm.cell().state = VmState::Migrating;
            let outcome = self.send_guest(&vm, &params, &progress).await;
            if let Err(e) = &outcome {
                let mut c = vm.cell();
                if c.state == VmState::Migrating {
                    c.state = before;
                }
                tracing::warn!(error = %e, "migration failed; the guest stays here");
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// Sets the capabilities and limits, starts `migrate` and follows it to its end.
    async fn send_guest(
        &self,
        vm: &Vm,
        params: &MigrationParams,
        progress: &ProgressSender,
    ) -> Result<MigrationProgress> {
        let _ = progress.send(MigrationProgress::phase(MigrationPhase::Preparing));
        let copy = params.storage.as_ref();
        let caps = capabilities(copy.is_some());
        self.qmp_call(vm, "migrate-set-capabilities", Some(caps))
            .await?;
        if let Some(tls) = &params.tls {
            self.add_tls_creds(vm, tls, Endpoint::Client).await?;
        }
        self.qmp_call(vm, "migrate-set-parameters", Some(parameters(params)))
            .await?;
        if let Some(c) = copy {
            let tls = params.tls.as_ref();
            let copied = self
                .mirror_disks(vm, &c.server, &c.disks, tls, progress)
                .await;
            if let Err(e) = copied {
                let _ = self.end_mirrors(vm, &c.disks, false).await;
                return Err(e);
            }
        }
        let sent = self.send_memory(vm, params, progress).await;
        if let (Err(_), Some(c)) = (&sent, copy) {
            let _ = self.end_mirrors(vm, &c.disks, false).await;
        }
        sent
    }

    /// `migrate`, followed to its end; a storage copy's mirrors end at `pre-switchover`.
    async fn send_memory(
        &self,
        vm: &Vm,
        params: &MigrationParams,
        progress: &ProgressSender,
    ) -> Result<MigrationProgress> {
        self.qmp_call(vm, "migrate", Some(json!({ "uri": params.uri })))
            .await?;
        tracing::info!(uri = %params.uri, "migration started");
        let q = self.qmp_of(vm).await?;
        let (mut last, mut settle) = (None, 0);
        loop {
            if progress.is_closed() {
                return Err(self.cancel_migration(vm).await);
            }
            let info = q
                .execute("query-migrate", None)
                .await
                .map_err(|source| QemuError::Qmp {
                    vm_id: vm.id.clone(),
                    source,
                })?;
            if let (Some(c), Some("pre-switchover")) = (&params.storage, info["status"].as_str()) {
                self.end_mirrors(vm, &c.disks, true).await?;
                let go = json!({ "state": "pre-switchover" });
                self.qmp_call(vm, "migrate-continue", Some(go)).await?;
                continue;
            }
            match read(&info) {
                // QEMU says `completed` a moment before it has computed the downtime.
                Reading::Done(p) if p.downtime_ms.unwrap_or(0) == 0 && settle < SETTLE_POLLS => {
                    settle += 1;
                }
                Reading::Done(p) => {
                    tracing::info!(downtime_ms = ?p.downtime_ms, "migration completed");
                    let marker = handover_marker(&vm.paths);
                    blocking(move || std::fs::write(&marker, b"").map_err(io_err(&marker))).await?;
                    return Ok(p);
                }
                Reading::Failed(why) => return Err(failed(&vm.id, &why)),
                Reading::Going(p) => {
                    if last.as_ref() != Some(&p) {
                        let _ = progress.send(p.clone());
                        last = Some(p);
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `migrate_cancel`, then waits for QEMU to wind the migration down.
    async fn cancel_migration(&self, vm: &Vm) -> QemuError {
        tracing::info!("migration cancelled by the caller");
        let _ = self.qmp_call(vm, "migrate_cancel", None).await;
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        while tokio::time::Instant::now() < deadline {
            let Ok(q) = self.qmp_of(vm).await else { break };
            match q.execute("query-migrate", None).await.map(|v| read(&v)) {
                Ok(Reading::Going(_)) => tokio::time::sleep(POLL).await,
                _ => break,
            }
        }
        failed(&vm.id, "cancelled")
    }

    /// Gives the VM away after the target confirmed (see
    /// [`limiquantix_vm::VmBackend::complete_outgoing`]).
    pub async fn complete_outgoing(&self, id: &VmId, target: &str) -> Result<()> {
        let span = tracing::info_span!("complete_outgoing", vm_id = %id);
        async {
            let _catalog = self.inner.catalog_lock(id).await;
            let vm = self.vm(id)?;
            let _op = vm.op.lock().await;
            self.check_migrated(&vm).await?;
            self.forget(&vm).await?;
            self.inner.emit(
                id,
                VmEventKind::MigratedOut {
                    target: target.to_owned(),
                },
            );
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The VM is `migrating` and its QEMU handed the guest over (`postmigrate`).
    async fn check_migrated(&self, vm: &Vm) -> Result<()> {
        let state = vm.cell().state;
        if state != VmState::Migrating {
            return Err(QemuError::Refused(BackendError::Precondition(format!(
                "VM {} is {state}: no completed migration to finish",
                vm.id
            ))));
        }
        let q = self.qmp_of(vm).await?;
        let status = q.query_status().await.map_err(|source| QemuError::Qmp {
            vm_id: vm.id.clone(),
            source,
        })?;
        if status != "postmigrate" {
            return Err(QemuError::Refused(BackendError::Precondition(format!(
                "VM {}: QEMU is {status}, not postmigrate: the guest was not handed over",
                vm.id
            ))));
        }
        Ok(())
    }

    /// Takes the guest back after a migration the target did not confirm (see
    /// [`limiquantix_vm::VmBackend::cancel_outgoing`]).
    pub async fn cancel_outgoing(&self, id: &VmId) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("cancel_outgoing", vm_id = %id);
        async {
            let _op = vm.op.lock().await;
            if vm.cell().state != VmState::Migrating {
                return Ok(());
            }
            self.qmp_call(&vm, "cont", None).await?;
            vm.cell().state = VmState::Running;
            let _ = tokio::fs::remove_file(handover_marker(&vm.paths)).await;
            tracing::warn!("the target did not take the guest; it runs here again");
            Ok(())
        }
        .instrument(span)
        .await
    }
}
