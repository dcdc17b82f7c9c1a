//! Opening the backend: loading every VM and reconciling it with reality (re-adopting a running
//! QEMU, or recording how it ended while nobody watched).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::admission::{self, Gate};
use super::core::{
    ADOPT_PARALLEL, ADOPT_QMP_WAIT, EVENT_CAPACITY, Inner, QemuBackend, Result, blocking,
    create_private_dir, lock,
};
use super::define;
use super::monitor;
use super::types::BackendConfig;
use super::types::QemuError;
use super::vm::{self, Vm};
use crate::argv::HostConfig;
use crate::persist::{self, ExitKind, RuntimeRecord};
use crate::probe::{ChooseError, choose_accel};
use crate::process::{self, QemuProcess};
use crate::qmp::QmpClient;
use limiquantix_vm::model::VmDefinition;
use limiquantix_vm::state::VmState;

impl QemuBackend {
    /// Opens the backend: creates the directories, resolves the accelerator, loads every VM and
    /// re-adopts the running ones.
    pub async fn open(config: BackendConfig) -> Result<Self> {
        let vms_dir = config.state_dir.join("vms");
        let run_vms = config.run_dir.join("vms");
        let loaded = blocking(move || {
            create_private_dir(&vms_dir)?;
            create_private_dir(&run_vms)?;
            define::remove_stale_staging(&vms_dir);
            Ok(define::load_all(&vms_dir))
        })
        .await?;
        let choice = choose_accel(
            config.accel,
            &config.kvm_probe,
            &config.qemu_binary,
            &config.run_dir,
        )
        .await
        .map_err(|e| match e {
            ChooseError::Device(e) => QemuError::Accel(e),
            ChooseError::Probe(e) => QemuError::KvmProbe(e),
        })?;
        let kind = choice.kind;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let nofile = config
            .nofile_limit
            .or_else(admission::current_nofile_limit)
            .unwrap_or(u64::MAX);
        let inner = Arc::new(Inner {
            starts: Gate::new("QEMU starts", config.max_concurrent_starts),
            disk_creations: Gate::new("disk creations", config.max_concurrent_disk_creations),
            nofile: (nofile, admission::vm_capacity(nofile)),
            host: HostConfig {
                hotplug_ports: config.hotplug_ports,
                ..HostConfig::new(kind)
            },
            config,
            vms: Mutex::new(BTreeMap::new()),
            events,
            catalog: Mutex::default(),
            monitors: Mutex::new(Vec::new()),
            usage: Default::default(),
            accel_choice: choice,
        });
        let backend = Self { inner };
        let started = std::time::Instant::now();
        backend.reconcile_all(loaded).await;
        tracing::debug!(elapsed = ?started.elapsed(), "VMs reconciled");
        backend.start_collector();
        tracing::info!(
            vms = lock(&backend.inner.vms).len(),
            accel = kind.qemu_name(),
            accel_reason = %backend.inner.accel_choice.reason,
            "QEMU backend open"
        );
        Ok(backend)
    }

    /// Reconciles every loaded VM, [`ADOPT_PARALLEL`] at a time: a VM whose QEMU is gone is
    /// marked at once (its pid is checked in `/proc`, nothing waits on a timeout), and one slow
    /// QMP handshake does not hold up the others.
    async fn reconcile_all(&self, loaded: Vec<VmDefinition>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(ADOPT_PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        for def in loaded {
            let (backend, permits) = (self.clone(), permits.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let id = def.id.clone();
                let vm = backend.reconcile(def).await;
                if backend.settle_incoming(&vm).await {
                    return;
                }
                backend.settle_outgoing(&vm).await;
                if let Err(e) = backend.settle_snapshots(&vm).await {
                    tracing::warn!(vm_id = %id, error = %e, "cannot settle an interrupted snapshot operation");
                }
                lock(&backend.inner.vms).insert(id, vm);
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "reconciling a VM failed");
            }
        }
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
        let has_qmp = qmp.is_some();
        let generation = {
            let mut c = vm.cell();
            c.generation += 1;
            c.state = state;
            c.process = Some(proc_.clone());
            c.qmp = qmp.clone();
            c.started_at_ms = record.map(|r| r.started_at_ms);
            c.paused_as = run_state.filter(|rs| rs != "running");
            c.stop_requested = record.is_some_and(|r| r.shutdown_requested);
            c.generation
        };
        let m = monitor::spawn_monitor(
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
        if has_qmp && let Err(e) = self.reconcile_devices(vm).await {
            tracing::warn!(vm_id = %vm.id, error = %e, "devices not reconciled with the definition");
        }
    }
}
