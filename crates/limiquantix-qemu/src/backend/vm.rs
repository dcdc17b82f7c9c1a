//! One VM's runtime record (its monitor task is in `monitor`).
//!
//! Each VM has an operation lock (a tokio mutex held for the whole of start, stop, pause, ...,
//! so operations on one VM run one at a time) and a small synchronous state cell that the
//! monitor task updates from QMP events and the process exit. Each QEMU instance gets a
//! generation number; a monitor only touches the state of its own generation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::watch;

use crate::paths::RuntimePaths;
use crate::persist;
use crate::process::QemuProcess;
use crate::qga::QgaClient;
use crate::qmp::QmpClient;
use crate::readiness::BootPhase;
use limiquantix_vm::model::{VmDefinition, VmId};
use limiquantix_vm::state::VmState;
use limiquantix_vm::{VmEntry, VmStatus};

/// A VM known to the backend.
pub(super) struct Vm {
    pub(super) id: VmId,
    pub(super) paths: RuntimePaths,
    /// Serialises operations on this VM.
    pub(super) op: tokio::sync::Mutex<()>,
    /// The guest-agent client, shared by every caller.
    pub(super) qga: Arc<QgaClient>,
    /// Notified when the guest opens the agent's port (QMP `VSERPORT_CHANGE`): the readiness
    /// watcher then asks the agent for cloud-init's verdict.
    pub(super) agent_opened: Arc<tokio::sync::Notify>,
    cell: Mutex<VmRuntime>,
    /// The guest's filesystems frozen through the agent, until thawed.
    pub(super) freeze: Mutex<Option<FreezeRecord>>,
    /// The last generation whose process end has been fully handled.
    pub(super) finished: watch::Sender<u64>,
}

/// A freeze of the guest's filesystems and the task that thaws them if no thaw comes.
pub(super) struct FreezeRecord {
    pub(super) token: String,
    pub(super) since: std::time::Instant,
    pub(super) timer: tokio::task::AbortHandle,
}

/// The mutable part of a [`Vm`].
pub(super) struct VmRuntime {
    pub(super) def: VmDefinition,
    pub(super) state: VmState,
    pub(super) generation: u64,
    pub(super) process: Option<QemuProcess>,
    pub(super) qmp: Option<Arc<QmpClient>>,
    pub(super) started_at_ms: Option<u64>,
    /// A stop was requested (or the guest shut down): the coming exit is clean.
    pub(super) stop_requested: bool,
    /// The guest or QEMU announced `SHUTDOWN`.
    pub(super) shutdown_seen: bool,
    pub(super) last_exit: Option<String>,
    /// The boot phase of the running QEMU's guest.
    pub(super) boot: Option<BootPhase>,
    /// QEMU's run state while paused (`paused`, `io-error`, `prelaunch`, ...), from
    /// `query-status` when the VM was adopted or its `STOP` event came; `None`: plain `paused`.
    pub(super) paused_as: Option<String>,
}

impl Vm {
    pub(super) fn new(def: VmDefinition, paths: RuntimePaths, state: VmState) -> Self {
        Self {
            id: def.id.clone(),
            qga: Arc::new(QgaClient::new(paths.qga_socket())),
            agent_opened: Arc::new(tokio::sync::Notify::new()),
            paths,
            op: tokio::sync::Mutex::new(()),
            cell: Mutex::new(VmRuntime {
                def,
                state,
                generation: 0,
                process: None,
                qmp: None,
                started_at_ms: None,
                stop_requested: false,
                shutdown_seen: false,
                last_exit: None,
                boot: None,
                paused_as: None,
            }),
            finished: watch::channel(0).0,
            freeze: Mutex::new(None),
        }
    }

    /// The state cell. Never held across an `.await`.
    pub(super) fn cell(&self) -> MutexGuard<'_, VmRuntime> {
        self.cell.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn status(&self) -> VmStatus {
        let c = self.cell();
        VmStatus {
            state: c.state,
            pid: c.process.as_ref().map(QemuProcess::pid),
            started_at: c
                .started_at_ms
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            run_state: run_state(c.state, c.paused_as.as_deref()),
            last_exit: c.last_exit.clone(),
            boot: c.boot.clone(),
        }
    }

    /// The VM's definition, status and disk files.
    pub(super) fn entry(&self) -> VmEntry {
        let definition = self.cell().def.clone();
        VmEntry {
            disk_files: disk_files(&definition, &self.paths),
            status: self.status(),
            definition,
        }
    }

    /// The runtime record file.
    pub(super) fn runtime_file(&self) -> std::path::PathBuf {
        self.paths.run_dir.join("runtime.json")
    }

    /// Waits until the end of generation `generation` has been handled.
    pub(super) async fn wait_finished(&self, generation: u64) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|g| *g >= generation).await;
    }

    /// Marks the coming exit of the current process as requested, in memory and on disk (so a
    /// restarted backend also counts it as clean).
    pub(super) async fn mark_stop_requested(&self) {
        let rec = {
            let mut c = self.cell();
            c.stop_requested = true;
            c.process.as_ref().map(|p| persist::RuntimeRecord {
                pid: p.pid(),
                started_at_ms: c.started_at_ms.unwrap_or_default(),
                shutdown_requested: true,
                exit: None,
            })
        };
        if let Some(rec) = rec {
            let path = self.runtime_file();
            let _ = tokio::task::spawn_blocking(move || persist::save_runtime(&path, &rec)).await;
        }
    }
}

/// QEMU's run state as the backend's own state knows it (kept by QMP events: no round trip).
fn run_state(state: VmState, paused_as: Option<&str>) -> Option<String> {
    match state {
        VmState::Running => Some("running".into()),
        VmState::Paused => Some(paused_as.unwrap_or("paused").into()),
        _ => None,
    }
}

/// Removes the sockets and pidfile a dead QEMU left behind.
pub(super) fn remove_runtime_leftovers(paths: &RuntimePaths) {
    for p in [
        paths.qmp_socket(),
        paths.qga_socket(),
        paths.serial_socket(),
        paths.pidfile(),
    ] {
        let _ = std::fs::remove_file(p);
    }
}

/// The host file of each disk: the given path, or where the backend creates it.
pub(super) fn disk_files(def: &VmDefinition, paths: &RuntimePaths) -> Vec<PathBuf> {
    (0..def.disks.len())
        .filter_map(|i| paths.disk_of(def, i))
        .collect()
}
