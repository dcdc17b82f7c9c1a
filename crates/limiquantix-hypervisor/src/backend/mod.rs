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
//! table ([`crate::state::valid_transition`]) and fails with
//! [`BackendError::InvalidTransition`] when it does not apply. A monitor task per running QEMU
//! turns QMP events and the process exit into state changes and [`VmEvent`]s.

mod define;
mod types;
mod vm;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::broadcast;
use tracing::Instrument;

use crate::accel::AccelKind;
use crate::argv::{HostConfig, QemuCommand};
use crate::firmware;
use crate::model::{VmDefinition, VmId};
use crate::paths::RuntimePaths;
use crate::persist::{self, ExitKind, RuntimeRecord};
use crate::process::{self, QemuProcess, Signal, SpawnSpec};
use crate::qmp::QmpClient;
use crate::state::{VmOp, VmState, valid_transition};

pub use types::{
    BackendConfig, BackendError, DefineExtras, StopOutcome, VmEvent, VmEventKind, VmStatus,
};
use vm::Vm;

/// Capacity of the event channel.
const EVENT_CAPACITY: usize = 1024;
/// After SIGTERM, how long QEMU gets before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long re-adoption waits for a running QEMU's QMP socket.
const ADOPT_QMP_WAIT: Duration = Duration::from_secs(5);
/// Bytes of `qemu.log` quoted in a start error.
const LOG_TAIL: u64 = 2048;

type Result<T> = std::result::Result<T, BackendError>;

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
        let _ = self.events.send(VmEvent {
            vm_id: vm_id.clone(),
            kind,
            at: SystemTime::now(),
        });
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
        .map_err(|e| BackendError::Task(e.to_string()))?
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io {
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
    /// Opens the backend: creates the directories, resolves the accelerator, loads every VM and
    /// re-adopts the running ones.
    pub async fn open(config: BackendConfig) -> Result<Self> {
        let accel = config.accel;
        let kind = blocking(move || Ok(accel.resolve()?)).await?;
        let vms_dir = config.state_dir.join("vms");
        let run_vms = config.run_dir.join("vms");
        let loaded = blocking(move || {
            create_private_dir(&vms_dir)?;
            create_private_dir(&run_vms)?;
            define::remove_stale_staging(&vms_dir);
            Ok(define::load_all(&vms_dir))
        })
        .await?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let inner = Arc::new(Inner {
            host: HostConfig::new(kind),
            config,
            vms: Mutex::new(BTreeMap::new()),
            events,
            catalog: Mutex::default(),
            monitors: Mutex::new(Vec::new()),
        });
        let backend = Self { inner };
        for def in loaded {
            let id = def.id.clone();
            let vm = backend.reconcile(def).await;
            lock(&backend.inner.vms).insert(id, vm);
        }
        tracing::info!(
            vms = lock(&backend.inner.vms).len(),
            accel = kind.qemu_name(),
            "QEMU backend open"
        );
        Ok(backend)
    }

    /// Brings one loaded VM in line with reality: adopt its running QEMU, or record how it ended.
    async fn reconcile(&self, def: VmDefinition) -> Arc<Vm> {
        let paths = self.inner.paths(&def.id);
        let id = def.id.clone();
        let vm = Arc::new(Vm::new(def, paths.clone(), VmState::Stopped));
        let runtime_file = vm.runtime_file();
        let (record, pid) = {
            let rf = runtime_file.clone();
            let pidfile = paths.pidfile();
            blocking(move || {
                let record = persist::load_runtime(&rf).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "ignoring an unreadable runtime record");
                    None
                });
                let pid = process::read_pidfile(&pidfile).ok().flatten();
                Ok((record, pid))
            })
            .await
            .unwrap_or((None, None))
        };
        // QEMU removes its pidfile when it exits normally (guest power-off, quit, SIGTERM), not
        // when it is killed or crashes.
        let pidfile_left = pid.is_some();
        let live = pid
            .or(record.as_ref().map(|r| r.pid))
            .and_then(|pid| process::adopt(pid, &id));
        if let Some(proc_) = live {
            self.adopt(&vm, proc_, record.as_ref()).await;
            return vm;
        }
        // Not running: was the end clean?
        let state = match &record {
            None => VmState::Stopped,
            Some(r) => match r.exit {
                Some(ExitKind::Clean) => VmState::Stopped,
                Some(ExitKind::Crashed) => VmState::Crashed,
                None if r.shutdown_requested || !pidfile_left => VmState::Stopped,
                None => VmState::Crashed,
            },
        };
        {
            let mut c = vm.cell();
            c.state = state;
            if state == VmState::Crashed {
                c.last_exit = Some("QEMU ended while the backend was not running".into());
            }
        }
        if let Some(r) = record.filter(|r| r.exit.is_none()) {
            let rec = RuntimeRecord {
                pid: 0,
                exit: Some(if state == VmState::Crashed {
                    ExitKind::Crashed
                } else {
                    ExitKind::Clean
                }),
                ..r
            };
            let _ = blocking(move || {
                vm::remove_runtime_leftovers(&paths);
                Ok(persist::save_runtime(&runtime_file, &rec)?)
            })
            .await;
            tracing::info!(vm_id = %id, state = %state, "QEMU ended while the backend was away");
        }
        vm
    }

    /// Takes over a running QEMU: QMP handshake, run state, monitor.
    async fn adopt(&self, vm: &Arc<Vm>, proc_: QemuProcess, record: Option<&RuntimeRecord>) {
        let qmp = match QmpClient::connect_with_retry(
            &vm.paths.qmp_socket(),
            self.inner.config.qmp_timeout,
            ADOPT_QMP_WAIT,
        )
        .await
        {
            Ok(q) => Some(Arc::new(q)),
            Err(e) => {
                tracing::warn!(vm_id = %vm.id, error = %e, "adopted QEMU without QMP");
                None
            }
        };
        let run_state = match &qmp {
            Some(q) => q.query_status().await.ok(),
            None => None,
        };
        let state = match run_state.as_deref() {
            Some("running") | None => VmState::Running,
            Some(_) => VmState::Paused,
        };
        let events = qmp.as_ref().map(|q| q.subscribe());
        let generation = {
            let mut c = vm.cell();
            c.generation += 1;
            c.state = state;
            c.process = Some(proc_.clone());
            c.qmp = qmp.clone();
            c.started_at_ms = record.map(|r| r.started_at_ms);
            c.stop_requested = record.is_some_and(|r| r.shutdown_requested);
            c.generation
        };
        let m = vm::spawn_monitor(
            Arc::downgrade(&self.inner),
            vm.clone(),
            generation,
            proc_,
            qmp,
            events,
            0,
        );
        lock(&self.inner.monitors).push(m);
        tracing::info!(vm_id = %vm.id, state = %state, "re-adopted running QEMU");
    }

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
            .ok_or_else(|| BackendError::NotFound { vm_id: id.clone() })
    }

    /// Checks `op` against the state table; returns the current state.
    fn check(vm: &Vm, op: VmOp) -> Result<VmState> {
        let state = vm.cell().state;
        match valid_transition(state, op) {
            Some(_) => Ok(state),
            None => Err(BackendError::InvalidTransition {
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
            .map_err(|source| BackendError::Qmp {
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
            .map_err(|source| BackendError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })
    }

    /// Defines a VM: validates it, creates its directory with the disks it owns and the seed
    /// in a staging directory, writes `vm.json` last and renames the directory into place. A
    /// failure leaves nothing behind; an identical definition of an existing VM succeeds again.
    pub async fn define(&self, def: VmDefinition, extras: DefineExtras) -> Result<VmStatus> {
        let span = tracing::info_span!("define", vm_id = %def.id);
        define::define(self, def, extras).instrument(span).await
    }

    /// Starts a stopped (or crashed) VM and returns once the guest runs.
    pub async fn start(&self, id: &VmId) -> Result<VmStatus> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("start", vm_id = %id);
        async {
            let _op = vm.op.lock().await;
            Self::check(&vm, VmOp::Start)?;
            let previous = {
                let mut c = vm.cell();
                let prev = c.state;
                c.state = VmState::Starting;
                prev
            };
            match self.launch(&vm).await {
                Ok(()) => {
                    self.inner.emit(&vm.id, VmEventKind::Started);
                    Ok(vm.status())
                }
                Err(e) => {
                    let mut c = vm.cell();
                    if c.state == VmState::Starting {
                        c.state = previous;
                    }
                    tracing::warn!(error = %e, "start failed");
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The QEMU arguments `start` would use for this VM (without the `-S` it adds to connect
    /// QMP before the guest runs). Prepares the UEFI variable store when UEFI is chosen.
    pub async fn command_line(&self, id: &VmId) -> Result<Vec<OsString>> {
        let vm = self.vm(id)?;
        self.build_args(&vm, false).await
    }

    /// Resolves the firmware and builds the arguments; with `prepare_run`, also creates the run
    /// directory and clears a dead QEMU's sockets and pidfile.
    async fn build_args(&self, vm: &Vm, prepare_run: bool) -> Result<Vec<OsString>> {
        let def = vm.cell().def.clone();
        let paths = vm.paths.clone();
        let ovmf = self.inner.config.ovmf.clone();
        let host = self.inner.host.clone();
        blocking(move || {
            if prepare_run {
                create_private_dir(&paths.run_dir)?;
                vm::remove_runtime_leftovers(&paths);
            }
            let (fw, _choice) = firmware::prepare(&def, &paths, ovmf.as_ref())?;
            Ok(QemuCommand::build(&def, &paths, &host, &fw)?.into_args())
        })
        .await
    }

    /// Builds the command line, spawns QEMU, connects QMP and starts the monitor.
    ///
    /// QEMU is not started with `-S`: the guest boots while QMP connects, so `start` costs no
    /// more than QEMU's own start-up. Events before the QMP handshake (a guest that powers off
    /// within its first milliseconds) are not seen, but the exit itself is: QEMU's exit status
    /// tells a clean end from a crash.
    async fn launch(&self, vm: &Arc<Vm>) -> Result<()> {
        let paths = vm.paths.clone();
        let args = self.build_args(vm, true).await?;
        // This boot is read from here on; earlier boots stay in the appended serial log.
        let serial_offset = tokio::fs::metadata(paths.serial_log())
            .await
            .map_or(0, |m| m.len());
        let proc_ = process::spawn(&SpawnSpec {
            program: &self.inner.config.qemu_binary,
            args: &args,
            log: &paths.qemu_log(),
            cwd: &paths.vm_dir,
        })?;
        let started_at_ms = persist::now_ms();
        let generation = {
            let mut c = vm.cell();
            c.generation += 1;
            c.process = Some(proc_.clone());
            c.qmp = None;
            c.started_at_ms = Some(started_at_ms);
            c.stop_requested = false;
            c.shutdown_seen = false;
            c.last_exit = None;
            c.generation
        };
        tracing::debug!(pid = proc_.pid(), generation, "QEMU spawned");
        let rec = RuntimeRecord {
            pid: proc_.pid(),
            started_at_ms,
            shutdown_requested: false,
            exit: None,
        };
        let rf = vm.runtime_file();
        let ready = async {
            let qmp_socket = paths.qmp_socket();
            let connect = async {
                tokio::select! {
                    q = QmpClient::connect_with_retry(
                        &qmp_socket,
                        self.inner.config.qmp_timeout,
                        self.inner.config.start_timeout,
                    ) => q.map_err(|e| e.to_string()),
                    exit = proc_.wait() => Err(format!("QEMU exited during start-up ({exit})")),
                }
            };
            // The record is written while QEMU starts up.
            let (saved, qmp) = tokio::join!(
                blocking(move || Ok(persist::save_runtime(&rf, &rec)?)),
                connect
            );
            saved?;
            let qmp = Arc::new(qmp.map_err(|reason| BackendError::StartFailed {
                vm_id: vm.id.clone(),
                reason,
                log_tail: log_tail(&paths.qemu_log()),
            })?);
            let password = vm.cell().def.console.vnc_password.clone();
            if let Some(pw) = password {
                qmp.execute("change-vnc-password", Some(json!({ "password": pw })))
                    .await
                    .map_err(|source| BackendError::Qmp {
                        vm_id: vm.id.clone(),
                        source,
                    })?;
            }
            Ok::<_, BackendError>(qmp)
        }
        .await;
        let qmp = match ready {
            Ok(q) => q,
            Err(e) => {
                // Nothing watches this QEMU yet: end it and record the end here.
                vm.mark_stop_requested().await;
                terminate(&proc_).await;
                vm.finish(&self.inner, generation, proc_.wait().await).await;
                return Err(e);
            }
        };
        let events = qmp.subscribe();
        vm.cell().qmp = Some(qmp.clone());
        let m = vm::spawn_monitor(
            Arc::downgrade(&self.inner),
            vm.clone(),
            generation,
            proc_.clone(),
            Some(qmp.clone()),
            Some(events),
            serial_offset,
        );
        lock(&self.inner.monitors).push(m);
        let mut c = vm.cell();
        if c.generation == generation && c.state == VmState::Starting {
            c.state = VmState::Running;
        }
        tracing::info!(pid = proc_.pid(), "VM started");
        Ok(())
    }

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
                let refused = BackendError::InvalidTransition {
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
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
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

    /// Every VM's status (from memory; no QMP calls).
    pub fn list(&self) -> Vec<VmStatus> {
        let vms: Vec<_> = lock(&self.inner.vms).values().cloned().collect();
        vms.iter().map(|v| v.status()).collect()
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
            return Err(BackendError::NotRunning {
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

    /// Inserts (`Some(path)`) or ejects (`None`) the medium of CD-ROM `cdrom_id`. On a running
    /// VM the change is made live over QMP; the definition is updated either way.
    pub async fn change_media(
        &self,
        id: &VmId,
        cdrom_id: &str,
        media: Option<PathBuf>,
    ) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("change_media", vm_id = %id, cdrom = cdrom_id);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::ChangeMedia)?;
            let mut def = vm.cell().def.clone();
            let cd = def
                .cdroms
                .iter_mut()
                .find(|c| c.id == cdrom_id)
                .ok_or_else(|| BackendError::NoSuchCdrom {
                    vm_id: vm.id.clone(),
                    cdrom_id: cdrom_id.to_owned(),
                })?;
            cd.path = media.clone();
            def.validate()?;
            let checked = def.clone();
            blocking(move || Ok(crate::storage::check_sources(&checked)?)).await?;
            if state.is_active() {
                match &media {
                    Some(p) => {
                        let file = p.to_str().unwrap_or_default();
                        self.qmp_call(
                            &vm,
                            "blockdev-change-medium",
                            Some(json!({
                                "id": cdrom_id,
                                "filename": file,
                                "format": "raw",
                                "read-only-mode": "read-only",
                            })),
                        )
                        .await?;
                    }
                    None => {
                        let id_arg = json!({ "id": cdrom_id });
                        let mut open = id_arg.clone();
                        open["force"] = true.into();
                        self.qmp_call(&vm, "blockdev-open-tray", Some(open)).await?;
                        self.qmp_call(&vm, "blockdev-remove-medium", Some(id_arg.clone()))
                            .await?;
                        self.qmp_call(&vm, "blockdev-close-tray", Some(id_arg))
                            .await?;
                    }
                }
            }
            let json_path = vm.paths.vm_json();
            let saved = def.clone();
            blocking(move || Ok(persist::save_definition(&json_path, &saved)?)).await?;
            vm.cell().def = def;
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// SIGTERM, then SIGKILL if QEMU is still there after [`TERM_GRACE`].
async fn terminate(proc_: &QemuProcess) {
    proc_.signal(Signal::Term);
    if proc_.wait_timeout(TERM_GRACE).await.is_none() {
        proc_.signal(Signal::Kill);
        proc_.wait().await;
    }
}

/// The end of `qemu.log` (the last start's part), for error messages.
fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let last = text.rfind("\n--- ").map_or(&text[..], |i| &text[i + 1..]);
    let body = last.split_once('\n').map_or("", |(_, rest)| rest);
    body.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catalog_locks_serialise_one_id_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BackendConfig::new(dir.path().join("state"), dir.path().join("run"));
        config.accel = crate::accel::Accel::Tcg;
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

    #[test]
    fn log_tail_is_the_last_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("qemu.log");
        std::fs::write(
            &log,
            "--- 1 starting qemu\nold error\n--- 2 starting qemu\nqemu: -device x: bad\n",
        )
        .unwrap();
        assert_eq!(log_tail(&log), "qemu: -device x: bad");
        assert_eq!(log_tail(&dir.path().join("absent")), "");
    }
}
