//! The target's half of a live migration: a VM defined from the source's definition over disk
//! files already reachable here, its QEMU waiting with `-incoming defer`, then the guest taken
//! over ([`QemuBackend::finish_incoming`]) or everything given up
//! ([`QemuBackend::abort_incoming`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::Instrument;

use super::qmp::{Reading, read};
use super::storage::{create_local, local_disks};
use super::tls::{CREDS_ID, Endpoint, free_port, host_port};
use crate::backend::core::{Inner, QemuBackend, Result, blocking, lock};
use crate::backend::define::{
    check_seed_cdrom, create_staging, publish, write_seed_and_definition,
};
use crate::backend::types::QemuError;
use crate::backend::vm::Vm;
use crate::paths::RuntimePaths;
use limiquantix_vm::migration::{IncomingEndpoint, IncomingNet, StorageCopy};
use limiquantix_vm::model::{ValidDefinition, VmDefinition, VmId};
use limiquantix_vm::state::VmState;
use limiquantix_vm::{BackendError, VmEventKind};

/// How often the target looks at the incoming migration.
const POLL: Duration = Duration::from_millis(20);

/// A refusal in the backend-neutral "precondition" category.
fn refused(msg: String) -> QemuError {
    QemuError::Refused(BackendError::Precondition(msg))
}

/// The marker of a VM whose guest has not arrived yet: in its state directory from
/// PrepareMigration until the guest runs here. A backend that opens and finds it gives the
/// migration up (the source then keeps the guest).
fn incoming_marker(paths: &RuntimePaths) -> std::path::PathBuf {
    paths.vm_dir.join("incoming-migration")
}

/// The migration socket of an incoming VM: beside its QMP socket.
fn incoming_socket(paths: &RuntimePaths) -> std::path::PathBuf {
    paths.run_dir.join("migrate.sock")
}

impl QemuBackend {
    /// Prepares an incoming live migration (see [`limiquantix_vm::VmBackend::prepare_incoming`]).
    pub async fn prepare_incoming(
        &self,
        def: ValidDefinition,
        seed: Option<Vec<u8>>,
        copy_local: bool,
        net: IncomingNet,
    ) -> Result<IncomingEndpoint> {
        let span = tracing::info_span!("prepare_incoming", vm_id = %def.id);
        self.prepare_incoming_inner(def.into_inner(), seed, copy_local, net)
            .instrument(span)
            .await
    }

    async fn prepare_incoming_inner(
        &self,
        def: VmDefinition,
        seed: Option<Vec<u8>>,
        copy_local: bool,
        net: IncomingNet,
    ) -> Result<IncomingEndpoint> {
        let inner = &self.inner;
        let paths = inner.paths(&def.id);
        check_seed_cdrom(&def, &paths, seed.is_some())?;
        let _catalog = inner.catalog_lock(&def.id).await;
        if self.vm(&def.id).is_ok() {
            return Err(QemuError::AlreadyExists { vm_id: def.id });
        }
        let (checked, p) = (def.clone(), paths.clone());
        let local = blocking(move || {
            let local = local_disks(&checked, &p, copy_local)?;
            limiquantix_storage::check_sources(&checked)?;
            Ok(local)
        })
        .await?;
        let vms_dir = inner.vms_dir();
        let staging = create_staging(&vms_dir, &def.id).await?;
        let staged = RuntimePaths {
            vm_dir: staging.path().to_owned(),
            run_dir: paths.run_dir.clone(),
        };
        create_local(&inner.config.qemu_img, &def, &staged, &local).await?;
        let copied: Vec<String> = local.iter().map(|&i| def.disks[i].id.clone()).collect();
        let (saved, target, id) = (def.clone(), paths.vm_dir.clone(), def.id.clone());
        blocking(move || {
            write_seed_and_definition(&staged, seed, &saved)?;
            let marker = incoming_marker(&staged);
            std::fs::write(&marker, b"").map_err(crate::backend::core::io_err(&marker))?;
            publish(staging, target, &vms_dir, id)
        })
        .await?;
        let vm = register_incoming(inner, def, paths);
        let _op = vm.op.lock().await;
        match self.listen_incoming(&vm, copied, &net).await {
            Ok(endpoint) => Ok(endpoint),
            Err(e) => {
                tracing::warn!(error = %e, "incoming migration not ready; forgetting the VM");
                let _ = self.forget(&vm).await;
                Err(e)
            }
        }
    }

    /// Starts the VM's QEMU waiting for a migration and opens its incoming address: a Unix
    /// socket, or from another node a TCP port with TLS.
    async fn listen_incoming(
        &self,
        vm: &Arc<Vm>,
        copied: Vec<String>,
        net: &IncomingNet,
    ) -> Result<IncomingEndpoint> {
        // `-S`: the guest stays paused after it arrived until ReceiveMigration (never running
        // on two nodes, nor here before the source gave it up).
        self.launch_with(vm, &["-incoming", "defer", "-S"]).await?;
        let caps = super::qmp::capabilities(false);
        self.qmp_call(vm, "migrate-set-capabilities", Some(caps))
            .await?;
        let (uri, nbd) = match net {
            IncomingNet::Local => {
                let socket = incoming_socket(&vm.paths);
                (format!("unix:{}", socket.display()), None)
            }
            IncomingNet::Network { ip, tls } => {
                self.add_tls_creds(vm, tls, Endpoint::Server).await?;
                let creds = json!({ "tls-creds": CREDS_ID });
                self.qmp_call(vm, "migrate-set-parameters", Some(creds))
                    .await?;
                let ip = *ip;
                let ports = blocking(move || {
                    let memory = free_port(ip, &[])?;
                    Ok((memory, free_port(ip, &[memory])?))
                })
                .await?;
                (
                    format!("tcp:{}", host_port(ip, ports.0)),
                    Some((ip, ports.1)),
                )
            }
        };
        let storage = if copied.is_empty() {
            None
        } else {
            let server = self.export_disks(vm, &copied, nbd).await?;
            Some(StorageCopy {
                server,
                disks: copied,
            })
        };
        self.qmp_call(vm, "migrate-incoming", Some(json!({ "uri": uri })))
            .await?;
        tracing::info!(uri = %uri, "waiting for the incoming migration");
        Ok(IncomingEndpoint { uri, storage })
    }

    /// Waits for the incoming guest and takes it over (see
    /// [`limiquantix_vm::VmBackend::finish_incoming`]).
    pub async fn finish_incoming(&self, id: &VmId, timeout: Duration) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("finish_incoming", vm_id = %id);
        async {
            let _op = vm.op.lock().await;
            let state = vm.cell().state;
            if state != VmState::Migrating {
                return Err(refused(format!(
                    "VM {id} is {state}: no incoming migration to finish"
                )));
            }
            self.wait_incoming(&vm, timeout).await?;
            let marker = incoming_marker(&vm.paths);
            blocking(move || {
                std::fs::remove_file(&marker).map_err(crate::backend::core::io_err(&marker))
            })
            .await?;
            // The disk copies are over (an error: there was no NBD server).
            let _ = self.qmp_call(&vm, "nbd-server-stop", None).await;
            self.qmp_call(&vm, "cont", None).await?;
            vm.cell().state = VmState::Running;
            self.inner.emit(id, VmEventKind::MigratedIn);
            tracing::info!("the migrated guest runs here");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Polls QEMU until the incoming migration completed (the guest paused here).
    async fn wait_incoming(&self, vm: &Vm, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let q = self.qmp_of(vm).await?;
            let qmp_err = |source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            };
            let status = q.query_status().await.map_err(qmp_err)?;
            if status != "inmigrate" {
                let info = q.execute("query-migrate", None).await.map_err(qmp_err)?;
                match read(&info) {
                    Reading::Done(_) => return Ok(()),
                    Reading::Failed(why) => {
                        return Err(refused(format!("the incoming migration failed: {why}")));
                    }
                    Reading::Going(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Refused(BackendError::Timeout(format!(
                    "the incoming migration of VM {} did not complete within {timeout:?}",
                    vm.id
                ))));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Gives up an incoming migration (see [`limiquantix_vm::VmBackend::abort_incoming`]).
    pub async fn abort_incoming(&self, id: &VmId) -> Result<()> {
        let span = tracing::info_span!("abort_incoming", vm_id = %id);
        async {
            let _catalog = self.inner.catalog_lock(id).await;
            let vm = self.vm(id)?;
            let _op = vm.op.lock().await;
            let state = vm.cell().state;
            if !matches!(
                state,
                VmState::Migrating | VmState::Crashed | VmState::Stopped
            ) {
                return Err(refused(format!(
                    "VM {id} is {state}: its guest runs here, the migration cannot be given up"
                )));
            }
            self.forget(&vm).await
        }
        .instrument(span)
        .await
    }
}

impl QemuBackend {
    /// At open: a VM whose guest had not arrived when the backend went away is given up (its
    /// QEMU ended, the VM forgotten); the source keeps the guest. Returns whether it was.
    pub(in crate::backend) async fn settle_incoming(&self, vm: &Arc<Vm>) -> bool {
        let marker = incoming_marker(&vm.paths);
        if !tokio::fs::try_exists(&marker).await.unwrap_or(false) {
            return false;
        }
        tracing::warn!(vm_id = %vm.id, "an incoming migration was interrupted; giving it up");
        if let Err(e) = self.forget(vm).await {
            tracing::warn!(vm_id = %vm.id, error = %e, "cannot remove the interrupted incoming VM");
        }
        true
    }
}

/// Adds the incoming VM to the catalogue as `migrating` (no `Defined` event: it arrives with
/// `MigratedIn`).
fn register_incoming(inner: &Inner, def: VmDefinition, paths: RuntimePaths) -> Arc<Vm> {
    let vm = Arc::new(Vm::new(def, paths, VmState::Migrating));
    lock(&inner.vms).insert(vm.id.clone(), vm.clone());
    vm
}
