//! Starting a VM: the command line, the QEMU process, QMP and the monitor.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use tracing::Instrument;

use serde_json::json;

use super::core::{LOG_TAIL, QemuBackend, Result, blocking, create_private_dir, lock};
use super::monitor;
use super::stop::terminate;
use super::types::QemuError;
use super::vm::{self, Vm};
use crate::argv::QemuCommand;
use crate::firmware;
use crate::persist::{self, RuntimeRecord};
use crate::process::{self, QemuProcess, SpawnSpec};
use crate::qmp::QmpClient;
use limiquantix_vm::model::VmId;
use limiquantix_vm::state::{VmOp, VmState};
use limiquantix_vm::{VmEventKind, VmStatus};

impl QemuBackend {
    /// Starts a stopped (or crashed) VM and returns once the guest runs.
    ///
    /// At most [`BackendConfig::max_concurrent_starts`](super::BackendConfig) QEMUs start at
    /// once; the others wait their turn until the caller's deadline
    /// ([`limiquantix_vm::deadline`]), and one whose deadline passes first changes nothing
    /// ([`QemuError::Queued`]). A start that got its turn runs to its end in its own task, even
    /// when the caller goes away meanwhile, so no QEMU is left half started.
    pub async fn start(&self, id: &VmId) -> Result<VmStatus> {
        let vm = self.vm(id)?;
        let deadline = limiquantix_vm::deadline::current();
        let span = tracing::info_span!("start", vm_id = %id);
        let this = self.clone();
        let task = async move {
            let asked = tokio::time::Instant::now();
            let _op = match deadline {
                Some(d) => tokio::time::timeout_at(d, vm.op.lock())
                    .await
                    .map_err(|_| QemuError::Queued {
                        vm_id: vm.id.clone(),
                        what: "operations on this VM",
                        cap: 1,
                        waited: asked.elapsed(),
                    })?,
                None => vm.op.lock().await,
            };
            Self::check(&vm, VmOp::Start)?;
            let _turn = this.inner.starts.enter(&vm.id, deadline).await?;
            this.start_locked(&vm, false).await
        };
        tokio::spawn(task.instrument(span))
            .await
            .map_err(|e| QemuError::Task(e.to_string()))?
    }

    /// Starts the VM for a caller holding its lock; with `paused`, QEMU gets `-S` and the guest
    /// never runs until resumed (reverting a stopped VM to a memory snapshot loads it first).
    pub(super) async fn start_locked(&self, vm: &Arc<Vm>, paused: bool) -> Result<VmStatus> {
        Self::check(vm, VmOp::Start)?;
        let previous = std::mem::replace(&mut vm.cell().state, VmState::Starting);
        match self.launch(vm, paused).await {
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

    /// The QEMU arguments `start` would use for this VM (without the `-S` it adds to connect
    /// QMP before the guest runs). Prepares the UEFI variable store when UEFI is chosen.
    pub async fn command_line(&self, id: &VmId) -> Result<Vec<OsString>> {
        let vm = self.vm(id)?;
        Ok(self.build_args(&vm, false).await?.0)
    }

    /// Resolves the firmware and builds the arguments; with `prepare_run`, also creates the run
    /// directory and clears a dead QEMU's sockets and pidfile. Also returns the serial log's
    /// length (where this boot's console starts). One trip to the blocking pool: on a busy host
    /// each trip is a thread wake-up the start waits for.
    async fn build_args(&self, vm: &Vm, prepare_run: bool) -> Result<(Vec<OsString>, u64)> {
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
            let args = QemuCommand::build(&def, &paths, &host, &fw)?.into_args();
            let serial_offset = std::fs::metadata(paths.serial_log()).map_or(0, |m| m.len());
            Ok((args, serial_offset))
        })
        .await
    }

    /// Builds the command line, spawns QEMU, connects QMP and starts the monitor.
    ///
    /// QEMU is not started with `-S`: the guest boots while QMP connects, so `start` costs no
    /// more than QEMU's own start-up. Events before the QMP handshake (a guest that powers off
    /// within its first milliseconds) are not seen, but the exit itself is: QEMU's exit status
    /// tells a clean end from a crash.
    async fn launch(&self, vm: &Arc<Vm>, paused: bool) -> Result<()> {
        self.launch_with(vm, if paused { &["-S"] } else { &[] })
            .await
    }

    /// [`Self::launch`] with `extra` arguments after the built ones (`-S`, `-incoming defer`).
    pub(super) async fn launch_with(&self, vm: &Arc<Vm>, extra: &[&str]) -> Result<()> {
        // This boot is read from `serial_offset` on; earlier boots stay in the appended log.
        let (mut args, serial_offset) = self.build_args(vm, true).await?;
        args.extend(extra.iter().map(OsString::from));
        let (proc_, generation, rec) = self.spawn_qemu(vm, &args)?;
        let qmp = match self.connect_qmp(vm, &proc_, rec).await {
            Ok(q) => q,
            Err(e) => {
                // Nothing watches this QEMU yet: end it and record the end here.
                vm.mark_stop_requested().await;
                terminate(&proc_).await;
                vm.finish(&self.inner, generation, proc_.wait().await).await;
                return Err(e);
            }
        };
        self.start_monitor(vm, generation, &proc_, qmp, serial_offset);
        Ok(())
    }

    /// Spawns QEMU with `args` and makes it the VM's current process: returns the process, its
    /// generation and the runtime record to save for it.
    fn spawn_qemu(&self, vm: &Vm, args: &[OsString]) -> Result<(QemuProcess, u64, RuntimeRecord)> {
        let paths = &vm.paths;
        let proc_ = process::spawn(&SpawnSpec {
            program: &self.inner.config.qemu_binary,
            args,
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
            c.paused_as = None;
            c.generation
        };
        tracing::debug!(pid = proc_.pid(), generation, "QEMU spawned");
        let rec = RuntimeRecord {
            pid: proc_.pid(),
            started_at_ms,
            shutdown_requested: false,
            exit: None,
        };
        Ok((proc_, generation, rec))
    }

    /// Saves the runtime record while QMP connects (failing when QEMU exits first), then sets
    /// the VNC password if the definition has one.
    async fn connect_qmp(
        &self,
        vm: &Vm,
        proc_: &QemuProcess,
        rec: RuntimeRecord,
    ) -> Result<Arc<QmpClient>> {
        let paths = &vm.paths;
        let rf = vm.runtime_file();
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
        let qmp = Arc::new(qmp.map_err(|reason| QemuError::StartFailed {
            vm_id: vm.id.clone(),
            reason,
            log_tail: log_tail(&paths.qemu_log()),
        })?);
        let password = vm.cell().def.console.vnc_password.clone();
        if let Some(pw) = password {
            qmp.execute("change-vnc-password", Some(json!({ "password": pw })))
                .await
                .map_err(|source| QemuError::Qmp {
                    vm_id: vm.id.clone(),
                    source,
                })?;
        }
        Ok(qmp)
    }

    /// Hands the running QEMU to a new monitor task and marks the VM running, unless a newer
    /// start or a stop got there first.
    fn start_monitor(
        &self,
        vm: &Arc<Vm>,
        generation: u64,
        proc_: &QemuProcess,
        qmp: Arc<QmpClient>,
        serial_offset: u64,
    ) {
        let events = qmp.subscribe();
        vm.cell().qmp = Some(qmp.clone());
        let m = monitor::spawn_monitor(
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
