//! The QEMU backend: defines, starts, stops and follows VMs, and finds them again after a
//! restart.
//!
//! [`QemuBackend::open`] loads every `<state>/vms/<id>/vm.json`, removes staging directories a
//! crashed `define` left, and reconciles each VM with reality: a QEMU still running it (pidfile,
//! `/proc/<pid>/cmdline` naming the VM's UUID, QMP handshake) is adopted and managed again; a VM
//! whose QEMU died while nobody watched is `stopped` when its runtime record says the end was
//! requested or the guest shut down, `crashed` otherwise.
//!
//! Operations on one VM are serialised by a per-VM lock; every operation first checks the state
//! table ([`limiquantix_vm::state::valid_transition`]) and fails with
//! [`QemuError::InvalidTransition`] when it does not apply. A monitor task per running QEMU
//! turns QMP events and the process exit into state changes and [`VmEvent`]s.

mod adopt;
mod api;
mod define;
mod media;
mod start;
mod stop;
mod types;
mod vm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::Instrument;

use crate::argv::HostConfig;
use crate::paths::RuntimePaths;
use crate::qmp::QmpClient;
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::{ValidDefinition, VmDefinition, VmId};
use limiquantix_vm::state::{VmOp, VmState, valid_transition};
use limiquantix_vm::{VmEntry, VmEvent, VmEventKind, VmStatus};

pub use types::{BackendConfig, DefineExtras, QemuError, StopOutcome};
use vm::Vm;

/// Capacity of the event channel.
const EVENT_CAPACITY: usize = 1024;
/// After SIGTERM, how long QEMU gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long re-adoption waits for a running QEMU's QMP socket.
const ADOPT_QMP_WAIT: Duration = Duration::from_secs(5);
/// Bytes of `qemu.log` quoted in a start error.
const LOG_TAIL: u64 = 2048;

type Result<T> = std::result::Result<T, QemuError>;

/// The QEMU backend. Cheap to clone; clones share the same VMs.
#[derive(Clone)]
pub struct QemuBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QemuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuBackend")
            .field("state_dir", &self.inner.config.state_dir)
            .field("run_dir", &self.inner.config.run_dir)
            .field("accel", &self.inner.host.accel)
            .finish()
    }
}

pub(crate) struct Inner {
    config: BackendConfig,
    host: HostConfig,
    vms: Mutex<BTreeMap<VmId, Arc<Vm>>>,
    events: broadcast::Sender<VmEvent>,
    /// One lock per VM id being defined or deleted (directory creation and removal): the same
    /// id is serialised, different ids proceed side by side. An entry lives while held.
    catalog: Mutex<BTreeMap<VmId, Arc<tokio::sync::Mutex<()>>>>,
    /// Monitor tasks, stopped when the backend goes away (the QEMUs keep running).
    monitors: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for m in lock(&self.monitors).drain(..) {
            m.abort();
        }
    }
}

impl Inner {
    fn emit(&self, vm_id: &VmId, kind: VmEventKind) {
        let _ = self.events.send(VmEvent::now(vm_id.clone(), kind));
    }

    fn paths(&self, id: &VmId) -> RuntimePaths {
        RuntimePaths::new(&self.config.state_dir, &self.config.run_dir, id)
    }

    fn vms_dir(&self) -> PathBuf {
        self.config.state_dir.join("vms")
    }
}

/// Holds the catalog lock of one VM id; the map entry goes when nobody else waits for it.
pub(crate) struct CatalogGuard<'a> {
    inner: &'a Inner,
    id: VmId,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Inner {
    /// Waits for, and takes, the catalog lock of `id`.
    pub(crate) async fn catalog_lock(&self, id: &VmId) -> CatalogGuard<'_> {
        let m = lock(&self.catalog).entry(id.clone()).or_default().clone();
        CatalogGuard {
            inner: self,
            id: id.clone(),
            guard: Some(m.lock_owned().await),
        }
    }
}

impl Drop for CatalogGuard<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.inner.catalog);
        self.guard.take();
        // Only the map holds it: nobody waits, and nobody can start to while the map is locked.
        if map.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs blocking work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QemuError::Task(e.to_string()))?
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> QemuError + '_ {
    move |source| QemuError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

impl QemuBackend {
    /// The configuration the backend was opened with.
    pub fn config(&self) -> &BackendConfig {
        &self.inner.config
    }

    /// The accelerator VMs run with.
    pub fn accel(&self) -> AccelKind {
        self.inner.host.accel
    }

    /// Follows events of every VM from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<VmEvent> {
        self.inner.events.subscribe()
    }

    fn vm(&self, id: &VmId) -> Result<Arc<Vm>> {
        lock(&self.inner.vms)
            .get(id)
            .cloned()
            .ok_or_else(|| QemuError::NotFound { vm_id: id.clone() })
    }

    /// Checks `op` against the state table; returns the current state.
    fn check(vm: &Vm, op: VmOp) -> Result<VmState> {
        let state = vm.cell().state;
        match valid_transition(state, op) {
            Some(_) => Ok(state),
            None => Err(QemuError::InvalidTransition {
                vm_id: vm.id.clone(),
                state,
                op,
            }),
        }
    }

    /// The live QMP client of a running VM (reconnecting if the connection was lost).
    async fn qmp_of(&self, vm: &Vm) -> Result<Arc<QmpClient>> {
        let current = vm.cell().qmp.clone();
        if let Some(q) = current.filter(|q| !q.is_closed()) {
            return Ok(q);
        }
        let q = QmpClient::connect(&vm.paths.qmp_socket(), self.inner.config.qmp_timeout)
            .await
            .map_err(|source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })?;
        let q = Arc::new(q);
        vm.cell().qmp = Some(q.clone());
        Ok(q)
    }

    async fn qmp_call(&self, vm: &Vm, cmd: &str, args: Option<serde_json::Value>) -> Result<()> {
        let q = self.qmp_of(vm).await?;
        q.execute(cmd, args)
            .await
            .map(|_| ())
            .map_err(|source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })
    }

    /// Defines a VM: validates it, creates its directory with the disks it owns and the seed
    /// in a staging directory, writes `vm.json` last and renames the directory into place. A
    /// failure leaves nothing behind; an identical definition of an existing VM succeeds again.
    pub async fn define(&self, def: ValidDefinition, extras: DefineExtras) -> Result<VmStatus> {
        let span = tracing::info_span!("define", vm_id = %def.id);
        define::define(self, def, extras).instrument(span).await
    }

    /// Deletes a stopped VM: its `vm.json`, the disks the backend created, the seed, the UEFI
    /// variables, logs and runtime files. Disks given by path and backing images are never
    /// touched.
    pub async fn delete(&self, id: &VmId) -> Result<()> {
        let span = tracing::info_span!("delete", vm_id = %id);
        define::delete(self, id).instrument(span).await
    }

    /// The VM's status; for a running VM, QEMU's run state is asked over QMP as well.
    pub async fn status(&self, id: &VmId) -> Result<VmStatus> {
        let vm = self.vm(id)?;
        let mut st = vm.status();
        if matches!(st.state, VmState::Running | VmState::Paused) {
            let q = vm.cell().qmp.clone();
            if let Some(q) = q {
                match q.query_status().await {
                    Ok(rs) => {
                        let mut c = vm.cell();
                        if matches!(c.state, VmState::Running | VmState::Paused) {
                            c.state = if rs == "running" {
                                VmState::Running
                            } else {
                                VmState::Paused
                            };
                            st.state = c.state;
                        }
                        st.run_state = Some(rs);
                    }
                    Err(e) => tracing::debug!(vm_id = %id, error = %e, "query-status failed"),
                }
            }
        }
        Ok(st)
    }

    /// Every VM with its status (from memory; no QMP calls), in id order.
    pub fn list(&self) -> Vec<VmEntry> {
        let vms: Vec<_> = lock(&self.inner.vms).values().cloned().collect();
        vms.iter().map(|v| v.entry()).collect()
    }

    /// A VM's definition.
    pub fn get(&self, id: &VmId) -> Result<VmDefinition> {
        Ok(self.vm(id)?.cell().def.clone())
    }

    /// A VM's file layout (VM directory, `vm.json`, logs, sockets, pidfile, seed).
    pub fn paths(&self, id: &VmId) -> Result<RuntimePaths> {
        Ok(self.vm(id)?.paths.clone())
    }

    /// The QMP client of a running VM, for queries the backend does not wrap (`query-vnc`, ...).
    pub async fn qmp(&self, id: &VmId) -> Result<Arc<QmpClient>> {
        let vm = self.vm(id)?;
        let state = vm.cell().state;
        if !state.is_active() {
            return Err(QemuError::NotRunning {
                vm_id: vm.id.clone(),
                state,
            });
        }
        self.qmp_of(&vm).await
    }

    /// The VM's guest-agent client (one per VM, shared: QEMU serves one QGA connection at a time,
    /// so callers must not open their own while this one is in use). Connects on first use.
    pub fn qga(&self, id: &VmId) -> Result<Arc<crate::qga::QgaClient>> {
        Ok(self.vm(id)?.qga.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catalog_locks_serialise_one_id_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BackendConfig::new(dir.path().join("state"), dir.path().join("run"));
        config.accel = limiquantix_vm::accel::Accel::Tcg;
        let backend = QemuBackend::open(config).await.unwrap();
        let inner = &backend.inner;
        let (a, b) = (VmId::generate(), VmId::generate());
        let held = inner.catalog_lock(&a).await;
        // Another id is not held up.
        let other = tokio::time::timeout(Duration::from_secs(1), inner.catalog_lock(&b)).await;
        assert!(other.is_ok(), "a different id waited");
        drop(other);
        // The same id waits until the holder is done.
        let same = tokio::time::timeout(Duration::from_millis(100), inner.catalog_lock(&a)).await;
        assert!(same.is_err(), "the same id was not serialised");
        assert_eq!(lock(&inner.catalog).len(), 1);
        drop(held);
        assert!(
            lock(&inner.catalog).is_empty(),
            "released locks stay in the map"
        );
        drop(inner.catalog_lock(&a).await);
        assert!(lock(&inner.catalog).is_empty());
    }
}
