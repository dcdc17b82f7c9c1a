//! One VM's runtime record and its monitor task.
//!
//! Each VM has an operation lock (a tokio mutex held for the whole of start, stop, pause, ...,
//! so operations on one VM run one at a time) and a small synchronous state cell that the
//! monitor task updates from QMP events and the process exit. Each QEMU instance gets a
//! generation number; a monitor only touches the state of its own generation.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use super::Inner;
use crate::paths::RuntimePaths;
use crate::persist::{self, ExitKind};
use crate::process::{ProcessExit, QemuProcess};
use crate::qga::QgaClient;
use crate::qmp::{QmpClient, QmpEvent};
use crate::readiness::{BootPhase, ReadinessTracker, SerialLogTail, WatchOptions, watch_boot};
use limiquantix_vm::model::{DiskSource, VmDefinition, VmId};
use limiquantix_vm::state::VmState;
use limiquantix_vm::{VmEntry, VmEventKind, VmStatus};

/// How long the monitor waits, after QEMU exited, for the last QMP messages to be read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// The last generation whose process end has been fully handled.
    finished: watch::Sender<u64>,
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
            }),
            finished: watch::channel(0).0,
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
            run_state: None,
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

    /// Handles the end of generation `generation`'s process: final state, runtime record,
    /// event. Idempotent; does nothing for another generation.
    pub(super) async fn finish(&self, inner: &Inner, generation: u64, exit: ProcessExit) {
        let outcome = {
            let mut c = self.cell();
            if c.generation != generation || c.process.is_none() {
                None
            } else {
                // QEMU exits 0 after a guest power-off, `quit` or SIGTERM, and removes its
                // pidfile then; a kill or a crash does neither.
                let exited_normally = match (exit.code, exit.signal) {
                    (Some(code), _) => code == 0,
                    (None, Some(_)) => false,
                    (None, None) => !self.paths.pidfile().exists(),
                };
                let clean = c.stop_requested || c.shutdown_seen || exited_normally;
                let how = if c.shutdown_seen {
                    "shut down".to_owned()
                } else if clean {
                    format!("stopped ({exit})")
                } else {
                    format!("QEMU exited unexpectedly ({exit})")
                };
                c.state = if clean {
                    VmState::Stopped
                } else {
                    VmState::Crashed
                };
                c.process = None;
                c.qmp = None;
                c.boot = None;
                c.last_exit = Some(how.clone());
                let rec = persist::RuntimeRecord {
                    pid: 0,
                    started_at_ms: c.started_at_ms.take().unwrap_or_default(),
                    shutdown_requested: clean,
                    exit: Some(if clean {
                        ExitKind::Clean
                    } else {
                        ExitKind::Crashed
                    }),
                };
                Some((clean, how, rec))
            }
        };
        if let Some((clean, how, rec)) = outcome {
            let path = self.runtime_file();
            let run = self.paths.clone();
            let _ = tokio::task::spawn_blocking(move || {
                remove_runtime_leftovers(&run);
                persist::save_runtime(&path, &rec)
            })
            .await;
            if clean {
                tracing::info!(vm_id = %self.id, "VM stopped: {how}");
                inner.emit(&self.id, VmEventKind::Stopped);
            } else {
                tracing::warn!(vm_id = %self.id, "VM crashed: {how}");
                inner.emit(&self.id, VmEventKind::Crashed { reason: how });
            }
        }
        self.finished.send_if_modified(|g| {
            if *g < generation {
                *g = generation;
                true
            } else {
                false
            }
        });
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

/// Starts the monitor of generation `generation`: follows QMP events and the process exit, and
/// the guest's boot phases from `serial_offset` of the serial log on (0 for an adopted QEMU: the
/// last boot in the log wins).
pub(super) fn spawn_monitor(
    inner: Weak<Inner>,
    vm: Arc<Vm>,
    generation: u64,
    process: QemuProcess,
    qmp: Option<Arc<QmpClient>>,
    events: Option<broadcast::Receiver<QmpEvent>>,
    serial_offset: u64,
) -> tokio::task::AbortHandle {
    let span = tracing::info_span!("vm_monitor", vm_id = %vm.id, generation);
    let task = tokio::spawn(
        async move {
            // Ends with this task, also when the task is aborted.
            let readiness = AbortOnDrop(spawn_readiness(
                inner.clone(),
                Arc::downgrade(&vm),
                generation,
                serial_offset,
            ));
            let mut events = events;
            let exit = loop {
                tokio::select! {
                    exit = process.wait() => break exit,
                    ev = recv(&mut events) => match ev {
                        Some(ev) => handle_event(&inner, &vm, generation, ev).await,
                        None => events = None,
                    },
                }
            };
            // Read what QEMU said before it went (its SHUTDOWN decides clean or crashed).
            if let Some(q) = &qmp {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, q.closed()).await;
            }
            if let Some(rx) = events.as_mut() {
                while let Ok(ev) = rx.try_recv() {
                    handle_event(&inner, &vm, generation, ev).await;
                }
            }
            drop(readiness);
            if let Some(inner) = inner.upgrade() {
                vm.finish(&inner, generation, exit).await;
            }
        }
        .instrument(span),
    );
    task.abort_handle()
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows generation `generation`'s boot ([`watch_boot`]): each phase goes into the VM's status
/// and out as a [`VmEventKind::Boot`] event. Holds the VM weakly, so a dropped backend lets go of
/// its QMP connection.
fn spawn_readiness(
    inner: Weak<Inner>,
    weak_vm: Weak<Vm>,
    generation: u64,
    serial_offset: u64,
) -> tokio::task::JoinHandle<()> {
    let Some(vm) = weak_vm.upgrade() else {
        return tokio::spawn(async {});
    };
    {
        let mut c = vm.cell();
        if c.generation == generation {
            c.boot = Some(BootPhase::QemuStarted);
        }
    }
    let tail = SerialLogTail::new(vm.paths.serial_log(), serial_offset);
    let tracker = std::sync::Arc::new(Mutex::new(ReadinessTracker::new()));
    let qga = vm.qga.clone();
    let agent_opened = vm.agent_opened.clone();
    let id = vm.id.clone();
    drop(vm);
    let on_change = move |phase: &BootPhase| {
        let Some(vm) = weak_vm.upgrade() else {
            return;
        };
        {
            let mut c = vm.cell();
            if c.generation != generation {
                return;
            }
            c.boot = Some(phase.clone());
        }
        tracing::info!(vm_id = %vm.id, phase = %phase, "guest boot phase");
        if let Some(inner) = inner.upgrade() {
            inner.emit(
                &vm.id,
                VmEventKind::Boot {
                    phase: phase.clone(),
                },
            );
        }
    };
    tokio::spawn(async move {
        let watched = watch_boot(
            tail,
            tracker,
            qga,
            Some(agent_opened),
            WatchOptions::default(),
            on_change,
        );
        if let Err(e) = watched.await {
            tracing::warn!(vm_id = %id, error = %e, "stopped following the guest's boot");
        }
    })
}

/// The next event; `None` once the channel is closed (lagging skips ahead).
async fn recv(events: &mut Option<broadcast::Receiver<QmpEvent>>) -> Option<QmpEvent> {
    let Some(rx) = events.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(ev) => return Some(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "QMP events were dropped");
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

async fn handle_event(inner: &Weak<Inner>, vm: &Vm, generation: u64, ev: QmpEvent) {
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let flag = |k: &str| ev.data.get(k).and_then(Value::as_bool).unwrap_or(false);
    let text = |k: &str| {
        ev.data
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    tracing::debug!(event = %ev.name, "QMP event");
    let kind = {
        let mut c = vm.cell();
        if c.generation != generation {
            return;
        }
        match ev.name.as_str() {
            "SHUTDOWN" => {
                c.shutdown_seen = true;
                Some(VmEventKind::Shutdown {
                    guest: flag("guest"),
                    reason: text("reason"),
                })
            }
            "STOP" if matches!(c.state, VmState::Running | VmState::Paused) => {
                c.state = VmState::Paused;
                Some(VmEventKind::Paused)
            }
            "RESUME" if matches!(c.state, VmState::Running | VmState::Paused) => {
                c.state = VmState::Running;
                Some(VmEventKind::Resumed)
            }
            "RESET" => Some(VmEventKind::Reset {
                guest: flag("guest"),
            }),
            "GUEST_PANICKED" => Some(VmEventKind::GuestPanicked {
                action: text("action"),
            }),
            "VSERPORT_CHANGE" => {
                if flag("open") && text("id") == "qga-port" {
                    vm.agent_opened.notify_one();
                }
                None
            }
            _ => None,
        }
    };
    if matches!(kind, Some(VmEventKind::Shutdown { .. })) {
        vm.mark_stop_requested().await;
    }
    if let Some(kind) = kind {
        inner.emit(&vm.id, kind);
    }
}

/// The host file of each disk: the given path, or where the backend creates it.
pub(super) fn disk_files(def: &VmDefinition, paths: &RuntimePaths) -> Vec<PathBuf> {
    def.disks
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.source {
            DiskSource::Path { path } => path.clone(),
            _ => paths.disk_file(i, d.format),
        })
        .collect()
}
