//! [`VmBackend`] for [`QemuBackend`]: the daemon's view of this backend. The operations are the
//! backend's own; what is here answers the capability questions (VNC endpoint, guest agent, logs,
//! serial console, where the seed goes) and sorts [`QemuError`] into [`BackendError`]'s kinds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::core::{QemuBackend, blocking};
use super::types::{DefineExtras, QemuError};
use crate::argv::BootError;
use crate::qga::{self, QgaClient, QgaError};
use crate::qmp::QmpError;
use limiquantix_storage::StorageError;
use limiquantix_vm::guest_ops as g;
use limiquantix_vm::hotplug::DiskPlacement;
use limiquantix_vm::model::{DiskSpec, NicSpec, ValidDefinition, VmDefinition, VmId};
use limiquantix_vm::{
    AgentPing, BackendError, ConsoleStream, GuestFacts, GuestNic, SnapshotInfo, SnapshotRequest,
    VmBackend, VmEntry, VmEvent, VmLogs, VmState, VmUsage, VncEndpoint, migration as mig,
};

impl From<QemuError> for BackendError {
    /// Sorts a detailed backend error into its category; the message is kept.
    fn from(e: QemuError) -> Self {
        use QemuError as E;
        let text = e.to_string();
        match e {
            E::NotFound { vm_id } => BackendError::NotFound { vm_id },
            E::AlreadyExists { vm_id } => BackendError::AlreadyExists { vm_id },
            E::InvalidTransition { vm_id, state, op } => {
                BackendError::InvalidTransition { vm_id, state, op }
            }
            E::NotRunning { vm_id, state } => BackendError::NotRunning { vm_id, state },
            E::Invalid(m) => BackendError::Model(m),
            E::Resize(r) => r.into(),
            E::Refused(b) => b,
            E::Plug { .. } => BackendError::Precondition(text),
            E::UnplugTimeout { .. } | E::Queued { .. } => BackendError::Timeout(text),
            E::TooManyVms { .. } | E::Grow { .. } => BackendError::Precondition(text),
            E::NoSuchCdrom { .. } | E::Boot(BootError::Invalid(_)) => BackendError::Invalid(text),
            E::Boot(_) | E::Firmware(_) | E::Accel(_) | E::KvmProbe(_) | E::StartFailed { .. } => {
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
}

impl QemuBackend {
    /// Where the NoCloud seed of VM `id` is stored.
    pub fn seed_path(&self, id: &VmId) -> PathBuf {
        self.inner.paths(id).seed_iso()
    }

    /// The guest-agent client of a running VM, or (inner `Err`) why its agent cannot answer.
    async fn running_agent(&self, id: &VmId) -> Result<Result<Arc<QgaClient>, String>, QemuError> {
        let st = self.status(id).await?;
        if st.state != VmState::Running {
            return Ok(Err(format!(
                "VM {id} is {}: only a running guest's agent can answer",
                st.state
            )));
        }
        Ok(Ok(self.qga(id)?))
    }

    /// Where the VNC display listens, from QMP `query-vnc`.
    async fn vnc_endpoint(&self, id: &VmId) -> Result<Option<VncEndpoint>, QemuError> {
        let def = self.get(id)?;
        if !def.console.vnc {
            return Ok(None);
        }
        let st = self.status(id).await?;
        if !matches!(st.state, VmState::Running | VmState::Paused) {
            return Ok(None);
        }
        let qmp = self.qmp(id).await?;
        let info = qmp
            .execute("query-vnc", None)
            .await
            .map_err(|source| QemuError::Qmp {
                vm_id: id.clone(),
                source,
            })?;
        let enabled = info.get("enabled").and_then(|v| v.as_bool()) == Some(true);
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
}

/// The backend-neutral facts of the agent's answers.
fn guest_facts(
    info: qga::GuestInfo,
    hostname: Option<String>,
    os: Option<qga::GuestOsInfo>,
    nics: Option<Vec<qga::GuestInterface>>,
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
        usage: Default::default(),
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

/// Why connecting to a VM's console socket failed, for people.
fn console_refusal(id: &VmId, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "VM {id} has no console socket: it was started by an older limiquantix-node, which \
             logged its serial port to a file only (restart the VM to get an interactive \
             console; its serial log stays readable with GetVMLogs)"
        ),
        std::io::ErrorKind::ConnectionRefused => format!(
            "VM {id}: QEMU does not answer on its console socket (the VM is stopping or its \
             process died)"
        ),
        _ => format!("cannot connect to the console of VM {id}: {e}"),
    }
}

impl VmBackend for QemuBackend {
    fn seed_path(&self, id: &VmId) -> PathBuf {
        QemuBackend::seed_path(self, id)
    }

    async fn define(
        &self,
        definition: ValidDefinition,
        seed_iso: Option<Vec<u8>>,
    ) -> Result<VmDefinition, BackendError> {
        let id = definition.id.clone();
        QemuBackend::define(self, definition, DefineExtras { seed_iso }).await?;
        Ok(self.get(&id)?)
    }

    async fn get(&self, id: &VmId) -> Result<VmEntry, BackendError> {
        let mut entry = self.vm(id)?.entry();
        entry.status = self.status(id).await?;
        Ok(entry)
    }

    async fn list(&self) -> Result<Vec<VmEntry>, BackendError> {
        Ok(QemuBackend::list(self))
    }

    async fn start(&self, id: &VmId) -> Result<(), BackendError> {
        QemuBackend::start(self, id).await?;
        Ok(())
    }

    async fn stop(&self, id: &VmId, timeout: Duration) -> Result<(), BackendError> {
        QemuBackend::stop(self, id, Some(timeout)).await?;
        Ok(())
    }

    async fn force_stop(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::force_stop(self, id).await?)
    }

    async fn reboot(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::reboot(self, id).await?)
    }

    async fn pause(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::pause(self, id).await?)
    }

    async fn resume(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::resume(self, id).await?)
    }

    async fn delete(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::delete(self, id).await?)
    }

    async fn change_media(
        &self,
        id: &VmId,
        cdrom_id: &str,
        iso: Option<PathBuf>,
    ) -> Result<(), BackendError> {
        Ok(QemuBackend::change_media(self, id, cdrom_id, iso).await?)
    }

    async fn resize_disk(
        &self,
        id: &VmId,
        disk_id: &str,
        new_size_bytes: u64,
    ) -> Result<u64, BackendError> {
        Ok(QemuBackend::resize_disk(self, id, disk_id, new_size_bytes).await?)
    }

    async fn create_snapshot(
        &self,
        id: &VmId,
        request: SnapshotRequest,
    ) -> Result<SnapshotInfo, BackendError> {
        Ok(QemuBackend::create_snapshot(self, id, request).await?)
    }

    async fn list_snapshots(&self, id: &VmId) -> Result<Vec<SnapshotInfo>, BackendError> {
        Ok(QemuBackend::list_snapshots(self, id).await?)
    }

    async fn revert_snapshot(&self, id: &VmId, snap: &str, stop: bool) -> Result<(), BackendError> {
        Ok(QemuBackend::revert_snapshot(self, id, snap, stop).await?)
    }

    async fn delete_snapshot(&self, id: &VmId, snap: &str) -> Result<(), BackendError> {
        Ok(QemuBackend::delete_snapshot(self, id, snap).await?)
    }

    async fn attach_disk(
        &self,
        id: &VmId,
        disk: DiskSpec,
        placement: DiskPlacement,
    ) -> Result<VmDefinition, BackendError> {
        Ok(QemuBackend::attach_disk(self, id, disk, placement).await?)
    }

    async fn detach_disk(
        &self,
        id: &VmId,
        disk_id: &str,
        delete: bool,
    ) -> Result<(), BackendError> {
        Ok(QemuBackend::detach_disk(self, id, disk_id, delete).await?)
    }

    async fn attach_nic(
        &self,
        id: &VmId,
        nic: NicSpec,
        api_id: Option<String>,
    ) -> Result<NicSpec, BackendError> {
        Ok(QemuBackend::attach_nic(self, id, nic, api_id).await?)
    }

    async fn detach_nic(&self, id: &VmId, nic_id: &str) -> Result<(), BackendError> {
        Ok(QemuBackend::detach_nic(self, id, nic_id).await?)
    }

    async fn vnc(&self, id: &VmId) -> Result<Option<VncEndpoint>, BackendError> {
        Ok(self.vnc_endpoint(id).await?)
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
        let unreachable = |e: QgaError| {
            BackendError::Precondition(format!("the guest agent of VM {id} does not answer: {e}"))
        };
        qga.ping().await.map_err(unreachable)?;
        let info = qga.info().await.map_err(unreachable)?;
        // An agent may have any of these commands disabled: what it refuses stays empty.
        let hostname = qga.host_name().await.ok();
        let os = qga.os_info().await.ok();
        let nics = qga.network_interfaces().await.ok();
        let enabled = |c: &str| {
            info.supported_commands
                .iter()
                .any(|s| s.name == c && s.enabled)
        };
        let mut usage = limiquantix_vm::GuestUsage::default();
        if enabled("guest-get-fsinfo") {
            usage.filesystems = qga.filesystems().await.unwrap_or_default();
        }
        if enabled("guest-file-open") && enabled("guest-file-read") {
            let read = async |p: &str| {
                let bytes = qga.read_file(p, 64 * 1024).await.unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let (mem, load, up) = (
                read("/proc/meminfo").await,
                read("/proc/loadavg").await,
                read("/proc/uptime").await,
            );
            usage.read_proc(&mem, &load, &up);
        }
        let mut facts = guest_facts(info, hostname, os, nics);
        facts.usage = usage;
        Ok(facts)
    }

    async fn guest_exec(
        &self,
        id: &VmId,
        e: g::GuestExec,
    ) -> Result<g::GuestExecResult, BackendError> {
        QemuBackend::guest_exec(self, id, e).await
    }

    async fn guest_read_file(
        &self,
        id: &VmId,
        r: g::GuestFileRead,
    ) -> Result<g::GuestFileData, BackendError> {
        QemuBackend::guest_read_file(self, id, r).await
    }

    async fn guest_write_file(&self, id: &VmId, w: g::GuestFileWrite) -> Result<u64, BackendError> {
        QemuBackend::guest_write_file(self, id, w).await
    }

    async fn guest_shutdown(&self, id: &VmId, m: g::GuestShutdownMode) -> Result<(), BackendError> {
        QemuBackend::guest_shutdown(self, id, m).await
    }

    async fn guest_fsfreeze(
        &self,
        id: &VmId,
        r: g::FreezeRequest,
    ) -> Result<g::FreezeResult, BackendError> {
        QemuBackend::guest_fsfreeze(self, id, r).await
    }

    async fn guest_fsthaw(&self, id: &VmId) -> Result<g::ThawResult, BackendError> {
        QemuBackend::guest_fsthaw(self, id).await
    }

    async fn guest_set_time(
        &self,
        id: &VmId,
        t: Option<i64>,
    ) -> Result<g::TimeSyncResult, BackendError> {
        QemuBackend::guest_set_time(self, id, t).await
    }

    async fn logs(&self, id: &VmId, lines: usize, max_bytes: u64) -> Result<VmLogs, BackendError> {
        let paths = self.vm(id)?.paths.clone();
        let logs = blocking(move || {
            let read = |p: PathBuf| {
                crate::logs::tail(&p, lines, max_bytes).map_err(|source| QemuError::Io {
                    path: p.clone(),
                    source,
                })
            };
            Ok(VmLogs {
                hypervisor: read(paths.qemu_log())?,
                serial: read(paths.serial_log())?,
            })
        })
        .await?;
        Ok(logs)
    }

    async fn open_console(&self, id: &VmId) -> Result<ConsoleStream, BackendError> {
        let vm = self.vm(id)?;
        let state = vm.cell().state;
        if !matches!(
            state,
            VmState::Running | VmState::Paused | VmState::Stopping
        ) {
            return Err(BackendError::Precondition(format!(
                "VM {id} is {state}: its serial console is available only while it runs (start \
                 it first; its serial log stays readable with GetVMLogs)"
            )));
        }
        let socket = tokio::net::UnixStream::connect(vm.paths.serial_socket())
            .await
            .map_err(|e| BackendError::Precondition(console_refusal(id, &e)))?;
        Ok(Box::pin(socket))
    }

    async fn console_history(&self, id: &VmId, max_bytes: usize) -> Result<Vec<u8>, BackendError> {
        let path = self.vm(id)?.paths.serial_log();
        crate::logs::file_tail(&path, max_bytes)
            .await
            .map_err(|e| BackendError::Internal(format!("reading the serial log of VM {id}: {e}")))
    }

    async fn prepare_incoming(
        &self,
        def: ValidDefinition,
        seed: Option<Vec<u8>>,
        copy: bool,
        net: mig::IncomingNet,
    ) -> Result<mig::IncomingEndpoint, BackendError> {
        Ok(QemuBackend::prepare_incoming(self, def, seed, copy, net).await?)
    }

    async fn finish_incoming(&self, id: &VmId, timeout: Duration) -> Result<(), BackendError> {
        Ok(QemuBackend::finish_incoming(self, id, timeout).await?)
    }

    async fn abort_incoming(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::abort_incoming(self, id).await?)
    }

    async fn migrate(
        &self,
        id: &VmId,
        params: mig::MigrationParams,
        progress: mig::ProgressSender,
    ) -> Result<mig::MigrationProgress, BackendError> {
        Ok(QemuBackend::migrate(self, id, params, progress).await?)
    }

    async fn complete_outgoing(&self, id: &VmId, target: &str) -> Result<(), BackendError> {
        Ok(QemuBackend::complete_outgoing(self, id, target).await?)
    }

    async fn cancel_outgoing(&self, id: &VmId) -> Result<(), BackendError> {
        Ok(QemuBackend::cancel_outgoing(self, id).await?)
    }

    fn subscribe(&self) -> broadcast::Receiver<VmEvent> {
        QemuBackend::subscribe(self)
    }

    fn usage(&self) -> std::collections::BTreeMap<VmId, VmUsage> {
        QemuBackend::usage(self)
    }
}
