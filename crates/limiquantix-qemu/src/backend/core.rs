//! The backend's shared state and the helpers every operation uses: [`QemuBackend`] and its
//! [`Inner`], the per-id catalog lock, looking a VM up and checking an operation against the
//! state table, the VM's QMP client, and running blocking work off the runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::types::{BackendConfig, QemuError};
use super::vm::Vm;
use crate::argv::HostConfig;
use crate::paths::RuntimePaths;
use crate::qmp::QmpClient;
use limiquantix_vm::model::VmId;
use limiquantix_vm::state::{VmOp, VmState, valid_transition};
use limiquantix_vm::{VmEvent, VmEventKind};

/// Capacity of the event channel.
pub(super) const EVENT_CAPACITY: usize = 1024;
/// After SIGTERM, how long QEMU gets before SIGKILL.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long re-adoption waits for a running QEMU's QMP socket.
pub(super) const ADOPT_QMP_WAIT: Duration = Duration::from_secs(5);
/// How many VMs re-adoption reconciles at once when the backend opens.
pub(super) const ADOPT_PARALLEL: usize = 16;
/// Bytes of `qemu.log` quoted in a start error.
pub(super) const LOG_TAIL: u64 = 2048;

/// The backend's result type.
pub(super) type Result<T> = std::result::Result<T, QemuError>;

/// The QEMU backend. Cheap to clone; clones share the same VMs.
#[derive(Clone)]
pub struct QemuBackend {
    /// The state every clone shares.
    pub(super) inner: Arc<Inner>,
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

/// What the clones of a [`QemuBackend`] share.
pub(crate) struct Inner {
    /// The configuration the backend was opened with.
    pub(super) config: BackendConfig,
    /// Host facts for the command line (the resolved accelerator).
    pub(super) host: HostConfig,
    /// Every VM, by id.
    pub(super) vms: Mutex<BTreeMap<VmId, Arc<Vm>>>,
    /// Where VM events go out.
    pub(super) events: broadcast::Sender<VmEvent>,
    /// One lock per VM id being defined or deleted (directory creation and removal): the same
    /// id is serialised, different ids proceed side by side. An entry lives while held.
    pub(super) catalog: Mutex<BTreeMap<VmId, Arc<tokio::sync::Mutex<()>>>>,
    /// Monitor tasks, stopped when the backend goes away (the QEMUs keep running).
    pub(super) monitors: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The metrics collector's last samples.
    pub(super) usage: crate::metrics::UsageStore,
    /// The cap on QEMUs starting at once.
    pub(super) starts: super::admission::Gate,
    /// The cap on defines creating disks at once.
    pub(super) disk_creations: super::admission::Gate,
    /// The open-file limit VMs are counted against, and how many VMs it serves.
    pub(super) nofile: (u64, usize),
    /// The accelerator VMs get and why.
    pub(super) accel_choice: limiquantix_vm::accel::AccelChoice,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for m in lock(&self.monitors).drain(..) {
            m.abort();
        }
    }
}

impl Inner {
    /// Sends a VM event to every subscriber (none listening is fine).
    pub(super) fn emit(&self, vm_id: &VmId, kind: VmEventKind) {
        let _ = self.events.send(VmEvent::now(vm_id.clone(), kind));
    }

    /// The file layout of VM `id`.
    pub(super) fn paths(&self, id: &VmId) -> RuntimePaths {
        RuntimePaths::new(&self.config.state_dir, &self.config.run_dir, id)
    }

    /// `<state>/vms`, where the VM directories live.
    pub(super) fn vms_dir(&self) -> PathBuf {
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

/// Locks a std mutex; a poisoned lock still hands out its data.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs blocking work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QemuError::Task(e.to_string()))?
}

/// Maps an I/O error on `path` to [`QemuError::Io`].
pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> QemuError + '_ {
    move |source| QemuError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` and its parents, readable by the owner only.
pub(super) fn create_private_dir(dir: &Path) -> Result<()> {
    limiquantix_fs::create_private_dir(dir).map_err(|e| io_err(dir)(e.source))
}

impl QemuBackend {
    /// The VM with id `id`, or [`QemuError::NotFound`].
    pub(super) fn vm(&self, id: &VmId) -> Result<Arc<Vm>> {
        lock(&self.inner.vms)
            .get(id)
            .cloned()
            .ok_or_else(|| QemuError::NotFound { vm_id: id.clone() })
    }

    /// Checks `op` against the state table; returns the current state.
    pub(super) fn check(vm: &Vm, op: VmOp) -> Result<VmState> {
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
    pub(super) async fn qmp_of(&self, vm: &Vm) -> Result<Arc<QmpClient>> {
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

    /// Runs QMP command `cmd` on a running VM, ignoring its answer.
    pub(super) async fn qmp_call(
        &self,
        vm: &Vm,
        cmd: &str,
        args: Option<serde_json::Value>,
    ) -> Result<()> {
        let q = self.qmp_of(vm).await?;
        q.execute(cmd, args)
            .await
            .map(|_| ())
            .map_err(|source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })
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
