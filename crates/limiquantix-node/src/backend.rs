//! The small interface the gRPC service needs from a VM backend.
//!
//! [`VmBackend`] is implemented by the adapter over `limiquantix_hypervisor`'s QEMU backend
//! (`qemu` module) and, in unit tests of the service, by an in-memory fake. It is deliberately
//! small: define, the lifecycle verbs, queries, media and events.

use limiquantix_hypervisor::model::{VmDefinition, VmId};
use limiquantix_hypervisor::paths::RuntimePaths;
pub use limiquantix_hypervisor::readiness::BootPhase;
pub use limiquantix_hypervisor::state::VmState;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// Run state and facts of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// State.
    pub state: VmState,
    /// QEMU's pid while running.
    pub pid: Option<u32>,
    /// When it last started.
    pub started_at: Option<SystemTime>,
    /// The guest's boot phase while QEMU runs (`None` when it does not run).
    pub boot: Option<BootPhase>,
}

/// A VM: its definition and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEntry {
    /// The definition as stored.
    pub definition: VmDefinition,
    /// The current status.
    pub status: VmStatus,
}

/// Where a VM's VNC display listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncEndpoint {
    /// Host address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// What a VM's guest agent answered to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPing {
    /// Whether the agent answered.
    pub connected: bool,
    /// The agent's version, when it answered.
    pub version: String,
    /// Why it did not answer, for people.
    pub error: String,
}

/// What a VM's guest agent says about the guest (`guest-info`, `guest-get-host-name`,
/// `guest-get-osinfo`, `guest-network-get-interfaces`). Anything the agent does not report is
/// empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFacts {
    /// The agent's version.
    pub agent_version: String,
    /// Commands the agent has enabled.
    pub capabilities: Vec<String>,
    /// The guest's host name.
    pub hostname: String,
    /// OS name (`Debian GNU/Linux`).
    pub os_name: String,
    /// OS version (`12 (bookworm)`).
    pub os_version: String,
    /// Kernel release (`6.1.0-26-amd64`).
    pub kernel_release: String,
    /// Network interfaces, loopback included, in the agent's order.
    pub interfaces: Vec<GuestNic>,
}

/// One network interface inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNic {
    /// Interface name (`eth0`, `enp0s3`).
    pub name: String,
    /// MAC address, when it has one.
    pub mac: String,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(std::net::IpAddr, u8)>,
}

/// What happened to a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEventKind {
    /// It was defined.
    Created,
    /// It started.
    Started,
    /// It stopped (guest power-off or a stop request).
    Stopped,
    /// It was paused.
    Paused,
    /// It was resumed.
    Resumed,
    /// It was reset.
    Rebooted,
    /// Its process died unexpectedly.
    Crashed,
    /// It was deleted.
    Deleted,
    /// The guest reached a new boot phase.
    Boot(BootPhase),
    /// Its guest agent started answering.
    AgentConnected,
    /// Its guest agent stopped answering.
    AgentDisconnected,
    /// Something else the backend reports (a shutdown reason, a guest panic).
    Other(String),
}

/// An event from the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEvent {
    /// The VM concerned.
    pub vm_id: VmId,
    /// What happened.
    pub kind: VmEventKind,
    /// Details for people.
    pub message: String,
    /// When.
    pub at: SystemTime,
}

/// Why a backend operation failed, by category (the service maps categories to gRPC codes in
/// [`crate::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No VM has this id.
    #[error("VM {vm_id} does not exist")]
    NotFound {
        /// The id asked for.
        vm_id: String,
    },
    /// A VM with this id is already defined.
    #[error("VM {vm_id} already exists")]
    AlreadyExists {
        /// The id.
        vm_id: String,
    },
    /// The operation is not possible in the VM's state (e.g. deleting a running VM).
    #[error("VM {vm_id} is {state}: cannot {op}")]
    InvalidTransition {
        /// The VM.
        vm_id: String,
        /// Its state.
        state: String,
        /// The refused operation.
        op: String,
    },
    /// The definition or an argument is not acceptable (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// The request cannot be satisfied on this host now (a tool missing, a port taken, no
    /// bootable device, ...).
    #[error("{0}")]
    Precondition(String),
    /// The operation did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// Anything else (I/O errors, QEMU misbehaving).
    #[error("{0}")]
    Internal(String),
}

/// The operations the service performs on VMs. Every method is safe to call concurrently; the
/// backend serialises operations on one VM.
pub trait VmBackend: Send + Sync + 'static {
    /// Defines a VM, creating its overlays/blank disks and writing `seed_iso` (mode 0600) as its
    /// NoCloud seed; all or nothing. Does not start it. Returns the stored definition.
    fn define(
        &self,
        definition: VmDefinition,
        seed_iso: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<VmDefinition, BackendError>> + Send;
    /// One VM.
    fn get(&self, id: &VmId) -> impl Future<Output = Result<VmEntry, BackendError>> + Send;
    /// Every VM, in id order.
    fn list(&self) -> impl Future<Output = Result<Vec<VmEntry>, BackendError>> + Send;
    /// Boots a stopped VM.
    fn start(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Asks the guest to power off and waits up to `timeout` for it.
    fn stop(
        &self,
        id: &VmId,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Ends the VM's process at once.
    fn force_stop(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Resets a running VM.
    fn reboot(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Pauses a running VM.
    fn pause(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Resumes a paused VM.
    fn resume(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Deletes a stopped VM and the files the backend created for it.
    fn delete(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Inserts (`Some`) or ejects (`None`) the medium of CD-ROM `cdrom_id`.
    fn change_media(
        &self,
        id: &VmId,
        cdrom_id: &str,
        iso: Option<PathBuf>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Where the VM's VNC display listens; `None` while it is not running or has no VNC.
    fn vnc(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<Option<VncEndpoint>, BackendError>> + Send;
    /// Pings the VM's guest agent. An agent that does not answer (not installed yet, the VM
    /// not running) is an answer with `connected: false`, not an error.
    fn ping_agent(&self, id: &VmId)
    -> impl Future<Output = Result<AgentPing, BackendError>> + Send;
    /// Asks the VM's guest agent about the guest. A VM that is not running, or whose agent
    /// does not answer, is an error (`Precondition`).
    fn guest_facts(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<GuestFacts, BackendError>> + Send;
    /// The VM's files (logs, sockets, seed).
    fn paths(&self, id: &VmId) -> RuntimePaths;
    /// A receiver of every VM event from now on.
    fn subscribe(&self) -> broadcast::Receiver<VmEvent>;
}
