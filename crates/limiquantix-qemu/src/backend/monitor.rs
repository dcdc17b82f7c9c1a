//! The monitor task of a running QEMU: QMP events and the process exit become state changes and
//! [`VmEvent`](limiquantix_vm::VmEvent)s, the guest's boot phases go into the VM's status, and
//! the end of a generation's process is recorded ([`Vm::finish`]).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use tracing::Instrument;

use super::core::Inner;
use super::vm::{Vm, remove_runtime_leftovers};
use crate::persist::{self, ExitKind};
use crate::process::{ProcessExit, QemuProcess};
use crate::qmp::{QmpClient, QmpEvent};
use crate::readiness::{BootPhase, ReadinessTracker, SerialLogTail, WatchOptions, watch_boot};
use limiquantix_vm::VmEventKind;
use limiquantix_vm::state::VmState;

/// How long the monitor waits, after QEMU exited, for the last QMP messages to be read.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

impl Vm {
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
                // A migration's loser ends quietly: it announces the move itself.
                let quiet = c.stop_requested && c.state == VmState::Migrating;
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
                c.paused_as = None;
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
                Some((clean, how, rec, quiet))
            }
        };
        if let Some((clean, how, rec, quiet)) = outcome {
            let path = self.runtime_file();
            let run = self.paths.clone();
            let _ = tokio::task::spawn_blocking(move || {
                remove_runtime_leftovers(&run);
                persist::save_runtime(&path, &rec)
            })
            .await;
            if quiet {
                tracing::info!(vm_id = %self.id, "QEMU ended after the migration: {how}");
            } else if clean {
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

/// Applies one QMP event of generation `generation` to the VM and announces it.
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
                c.paused_as = None;
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
    if matches!(kind, Some(VmEventKind::Paused)) {
        note_pause_reason(vm, generation).await;
    }
    if let Some(kind) = kind {
        inner.emit(&vm.id, kind);
    }
}

/// Asks QEMU, once per `STOP`, why the VM is paused (`io-error`, `suspended`, ...), so status
/// answers it from memory.
async fn note_pause_reason(vm: &Vm, generation: u64) {
    let Some(q) = vm.cell().qmp.clone() else {
        return;
    };
    if let Ok(rs) = q.query_status().await {
        let mut c = vm.cell();
        if c.generation == generation && c.state == VmState::Paused && rs != "running" {
            c.paused_as = Some(rs);
        }
    }
}
