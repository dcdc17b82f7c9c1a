//! The [`VmBackend`] adapter over `limiquantix_hypervisor`'s [`QemuBackend`]: type conversions
//! and the sorting of backend errors into the categories [`crate::status`] maps to gRPC codes.

use crate::backend::{
    AgentPing, BackendError, GuestFacts, GuestNic, VmBackend, VmEntry, VmEvent, VmEventKind,
    VmStatus, VncEndpoint,
};
use crate::config::Config;
use limiquantix_hypervisor::argv::BootError;
use limiquantix_hypervisor::backend::{self as hv, BackendConfig, DefineExtras, QemuBackend};
use limiquantix_hypervisor::model::{VmDefinition, VmId};
use limiquantix_hypervisor::paths::RuntimePaths;
use limiquantix_hypervisor::qga as hv_qga;
use limiquantix_hypervisor::qmp::QmpError;
use limiquantix_hypervisor::state::VmState as HvState;
use limiquantix_hypervisor::storage::StorageError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The QEMU backend as the service sees it.
#[derive(Clone, Debug)]
pub struct Qemu {
    backend: QemuBackend,
    events: broadcast::Sender<VmEvent>,
    state_dir: PathBuf,
    run_dir: PathBuf,
}

impl Qemu {
    /// Opens the backend (loads every definition, re-adopts running QEMUs) with the daemon's
    /// configuration, and starts translating its events.
    pub async fn open(config: &Config) -> Result<Self, BackendError> {
        let mut bc = BackendConfig::new(&config.state_dir, &config.run_dir);
        bc.accel = config.accel;
        bc.qemu_binary = config.qemu_binary.clone();
        bc.qemu_img = config.qemu_img.clone();
        bc.stop_timeout = config.stop_timeout;
        let backend = QemuBackend::open(bc).await.map_err(sort)?;
        let (events, _) = broadcast::channel(1024);
        let mut rx = backend.subscribe();
        let tx = events.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let _ = tx.send(event(e));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "backend events were dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(Self {
            backend,
            events,
            state_dir: config.state_dir.clone(),
            run_dir: config.run_dir.clone(),
        })
    }

    /// The accelerator VMs run with.
    pub fn accel(&self) -> limiquantix_hypervisor::accel::AccelKind {
        self.backend.accel()
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &QemuBackend {
        &self.backend
    }

    /// The guest-agent client of a running VM, or (inner `Err`) why its agent cannot answer.
    async fn running_agent(
        &self,
        id: &VmId,
    ) -> Result<Result<Arc<hv_qga::QgaClient>, String>, BackendError> {
        let st = self.backend.status(id).await.map_err(sort)?;
        if st.state != HvState::Running {
            return Ok(Err(format!(
                "VM {id} is {:?}: only a running guest's agent can answer",
                st.state
            )));
        }
        Ok(Ok(self.backend.qga(id).map_err(sort)?))
    }
}

fn status(s: &hv::VmStatus) -> VmStatus {
    VmStatus {
        state: s.state,
        pid: s.pid,
        started_at: s.started_at,
        boot: s.boot.clone(),
    }
}

/// The backend-neutral facts of the agent's answers.
fn guest_facts(
    info: hv_qga::GuestInfo,
    hostname: Option<String>,
    os: Option<hv_qga::GuestOsInfo>,
    nics: Option<Vec<hv_qga::GuestInterface>>,
) -> GuestFacts {
    let os = os.unwrap_or_default();
    GuestFacts {
        agent_version: info.version,
        capabilities: info
            .supported_commands
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| c.name)
            .collect(),
        hostname: hostname.unwrap_or_default(),
        os_name: os.name.or(os.id).unwrap_or_default(),
        os_version: os.version.or(os.version_id).unwrap_or_default(),
        kernel_release: os.kernel_release.unwrap_or_default(),
        interfaces: nics
            .unwrap_or_default()
            .into_iter()
            .map(|n| GuestNic {
                name: n.name,
                mac: n.hardware_address.unwrap_or_default(),
                // An address the agent reports in a form we cannot parse is left out.
                addresses: n
                    .ip_addresses
                    .into_iter()
                    .filter_map(|a| Some((a.ip_address.parse().ok()?, a.prefix)))
                    .collect(),
            })
            .collect(),
    }
}

fn event(e: hv::VmEvent) -> VmEvent {
    use hv::VmEventKind as K;
    let (kind, message) = match e.kind {
        K::Defined => (VmEventKind::Created, "VM defined".to_string()),
        K::Deleted => (VmEventKind::Deleted, "VM deleted".to_string()),
        K::Started => (VmEventKind::Started, "VM started".to_string()),
        K::Stopped => (VmEventKind::Stopped, "VM stopped".to_string()),
        K::Paused => (VmEventKind::Paused, "VM paused".to_string()),
        K::Resumed => (VmEventKind::Resumed, "VM resumed".to_string()),
        K::Reset { guest } => (
            VmEventKind::Rebooted,
            if guest {
                "the guest rebooted"
            } else {
                "VM reset"
            }
            .to_string(),
        ),
        K::Shutdown { guest, reason } => (
            VmEventKind::Other("shutdown".into()),
            format!(
                "machine shut down ({}{reason})",
                if guest { "by the guest: " } else { "" }
            ),
        ),
        K::GuestPanicked { action } => (
            VmEventKind::Other("guest-panicked".into()),
            format!("the guest kernel panicked (QEMU action: {action})"),
        ),
        K::Crashed { reason } => (VmEventKind::Crashed, format!("VM crashed: {reason}")),
        K::Boot { phase } => {
            let message = format!("guest boot: {phase}");
            (VmEventKind::Boot(phase), message)
        }
    };
    VmEvent {
        vm_id: e.vm_id,
        kind,
        message,
        at: e.at,
    }
}

/// Sorts a backend error into a category (the gRPC code is chosen in [`crate::status`]).
fn sort(e: hv::BackendError) -> BackendError {
    use hv::BackendError as E;
    let text = e.to_string();
    match e {
        E::NotFound { vm_id } => BackendError::NotFound {
            vm_id: vm_id.to_string(),
        },
        E::AlreadyExists { vm_id } => BackendError::AlreadyExists {
            vm_id: vm_id.to_string(),
        },
        E::InvalidTransition { vm_id, state, op } => BackendError::InvalidTransition {
            vm_id: vm_id.to_string(),
            state: state.to_string(),
            op: op.to_string(),
        },
        E::NotRunning { vm_id, state } => BackendError::InvalidTransition {
            vm_id: vm_id.to_string(),
            state: state.to_string(),
            op: "reach its QEMU".into(),
        },
        E::Invalid(_) | E::NoSuchCdrom { .. } => BackendError::Invalid(text),
        E::Boot(BootError::Invalid(_)) => BackendError::Invalid(text),
        E::Boot(_) | E::Firmware(_) | E::Accel(_) | E::StartFailed { .. } => {
            BackendError::Precondition(text)
        }
        E::Storage(StorageError::Io { .. }) => BackendError::Internal(text),
        E::Storage(_) => BackendError::Invalid(text),
        E::Qmp {
            source: QmpError::Timeout { .. },
            ..
        } => BackendError::Timeout(text),
        E::Qmp {
            source: QmpError::Command { .. },
            ..
        } => BackendError::Precondition(text),
        E::Qmp { .. } | E::Persist(_) | E::Process(_) | E::Io { .. } | E::Task(_) => {
            BackendError::Internal(text)
        }
    }
}

impl VmBackend for Qemu {
    async fn define(
        &self,
        definition: VmDefinition,
        seed_iso: Option<Vec<u8>>,
    ) -> Result<VmDefinition, BackendError> {
        let id = definition.id.clone();
        self.backend
            .define(definition, DefineExtras { seed_iso })
            .await
            .map_err(sort)?;
        self.backend.get(&id).map_err(sort)
    }

    async fn get(&self, id: &VmId) -> Result<VmEntry, BackendError> {
        let definition = self.backend.get(id).map_err(sort)?;
        let st = self.backend.status(id).await.map_err(sort)?;
        Ok(VmEntry {
            definition,
            status: status(&st),
        })
    }

    async fn list(&self) -> Result<Vec<VmEntry>, BackendError> {
        let mut out = Vec::new();
        for st in self.backend.list() {
            // A VM deleted between the two calls is simply left out.
            if let Ok(definition) = self.backend.get(&st.id) {
                out.push(VmEntry {
                    definition,
                    status: status(&st),
                });
            }
        }
        out.sort_by(|a, b| a.definition.id.as_str().cmp(b.definition.id.as_str()));
        Ok(out)
    }

    async fn start(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.start(id).await.map(|_| ()).map_err(sort)
    }

    async fn stop(&self, id: &VmId, timeout: Duration) -> Result<(), BackendError> {
        self.backend
            .stop(id, Some(timeout))
            .await
            .map(|_| ())
            .map_err(sort)
    }

    async fn force_stop(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.force_stop(id).await.map_err(sort)
    }

    async fn reboot(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.reboot(id).await.map_err(sort)
    }

    async fn pause(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.pause(id).await.map_err(sort)
    }

    async fn resume(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.resume(id).await.map_err(sort)
    }

    async fn delete(&self, id: &VmId) -> Result<(), BackendError> {
        self.backend.delete(id).await.map_err(sort)
    }

    async fn change_media(
        &self,
        id: &VmId,
        cdrom_id: &str,
        iso: Option<PathBuf>,
    ) -> Result<(), BackendError> {
        self.backend
            .change_media(id, cdrom_id, iso)
            .await
            .map_err(sort)
    }

    async fn vnc(&self, id: &VmId) -> Result<Option<VncEndpoint>, BackendError> {
        let def = self.backend.get(id).map_err(sort)?;
        if !def.console.vnc {
            return Ok(None);
        }
        let st = self.backend.status(id).await.map_err(sort)?;
        if !matches!(st.state, HvState::Running | HvState::Paused) {
            return Ok(None);
        }
        let qmp = self.backend.qmp(id).await.map_err(sort)?;
        let info = qmp
            .execute("query-vnc", None)
            .await
            .map_err(|e| BackendError::Internal(format!("VM {id}: query-vnc: {e}")))?;
        let enabled = info
            .get("enabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let host = info
            .get("host")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let port = info
            .get("service")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<u16>().ok());
        Ok(match (enabled, port) {
            (true, Some(port)) => Some(VncEndpoint {
                host: host.to_string(),
                port,
            }),
            _ => None,
        })
    }

    async fn ping_agent(&self, id: &VmId) -> Result<AgentPing, BackendError> {
        let qga = match self.running_agent(id).await? {
            Ok(qga) => qga,
            Err(error) => {
                return Ok(AgentPing {
                    connected: false,
                    version: String::new(),
                    error,
                });
            }
        };
        let answer = match qga.ping().await {
            Ok(()) => qga.info().await.map(|info| info.version),
            Err(e) => Err(e),
        };
        Ok(match answer {
            Ok(version) => AgentPing {
                connected: true,
                version,
                error: String::new(),
            },
            Err(e) => AgentPing {
                connected: false,
                version: String::new(),
                error: e.to_string(),
            },
        })
    }

    async fn guest_facts(&self, id: &VmId) -> Result<GuestFacts, BackendError> {
        let qga = self
            .running_agent(id)
            .await?
            .map_err(BackendError::Precondition)?;
        let unreachable = |e: hv_qga::QgaError| {
            BackendError::Precondition(format!("the guest agent of VM {id} does not answer: {e}"))
        };
        qga.ping().await.map_err(unreachable)?;
        let info = qga.info().await.map_err(unreachable)?;
        // An agent may have any of these commands disabled: what it refuses stays empty.
        let hostname = qga.host_name().await.ok();
        let os = qga.os_info().await.ok();
        let nics = qga.network_interfaces().await.ok();
        Ok(guest_facts(info, hostname, os, nics))
    }

    fn paths(&self, id: &VmId) -> RuntimePaths {
        self.backend
            .paths(id)
            .unwrap_or_else(|_| RuntimePaths::new(&self.state_dir, &self.run_dir, id))
    }

    fn subscribe(&self) -> broadcast::Receiver<VmEvent> {
        self.events.subscribe()
    }
}
