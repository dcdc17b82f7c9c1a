//! The [`VmBackend`] trait: what the daemon needs from a hypervisor backend.
//!
//! It speaks in VMs and capabilities, never in a backend's files or sockets: "define this",
//! "start it", "open its serial console", "the end of its logs", "where does its seed go". The
//! QEMU backend (`limiquantix-qemu`) implements it; a second backend is a sibling crate that
//! implements the same methods, and the daemon's service layer needs no change.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use crate::error::BackendError;
use crate::event::VmEvent;
use crate::guest::{AgentPing, GuestFacts};
use crate::guest_ops as g;
use crate::hotplug::DiskPlacement;
use crate::migration as mig;
use crate::model::{DiskSpec, NicSpec, ValidDefinition, VmDefinition, VmId};
use crate::snapshot::{SnapshotInfo, SnapshotRequest};
use crate::status::{VmEntry, VmLogs, VncEndpoint};
use crate::usage::VmUsage;

/// A byte stream both ways: a VM's serial console.
pub trait ConsoleIo: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> ConsoleIo for T {}

/// An open serial console of one VM.
pub type ConsoleStream = Pin<Box<dyn ConsoleIo>>;

/// The operations the daemon performs on VMs. Every method is safe to call concurrently; the
/// backend serialises operations on one VM (one owner per VM) and checks each against the state
/// table ([`crate::state::valid_transition`]), so a refused operation is
/// [`BackendError::InvalidTransition`] naming the [`crate::VmOp`].
pub trait VmBackend: Send + Sync + 'static {
    /// The last usage sample of every running VM (a copy of the collector's snapshot: never
    /// waits on a hypervisor or a guest). A backend without a collector answers an empty map.
    fn usage(&self) -> BTreeMap<VmId, VmUsage> {
        BTreeMap::new()
    }

    /// Where the NoCloud seed of VM `id` will be stored, for the seed CD-ROM of its definition.
    fn seed_path(&self, id: &VmId) -> PathBuf;

    /// Defines a VM, creating its overlays and blank disks and storing `seed_iso` (mode 0600)
    /// at [`VmBackend::seed_path`]; all or nothing. Does not start it. An identical definition
    /// of an existing VM succeeds again. Returns the stored definition.
    fn define(
        &self,
        definition: ValidDefinition,
        seed_iso: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<VmDefinition, BackendError>> + Send;

    /// One VM.
    fn get(&self, id: &VmId) -> impl Future<Output = Result<VmEntry, BackendError>> + Send;

    /// Every VM, in id order.
    fn list(&self) -> impl Future<Output = Result<Vec<VmEntry>, BackendError>> + Send;

    /// Boots a stopped (or crashed) VM.
    fn start(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Asks the guest to power off and waits up to `timeout` for it, then forces it off.
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

    /// Grows disk `disk_id` (a device id of the definition) to `new_size_bytes` and returns its
    /// previous virtual size: live while the VM runs or is paused (the guest sees the new size
    /// at once; growing its partitions and filesystems is the guest's business), on the image
    /// file while it is stopped or crashed. Grow only: a smaller size is
    /// [`BackendError::Invalid`] and changes nothing, the same size succeeds without change;
    /// the size is a positive multiple of 512, at most 64 TiB (the checks of
    /// [`crate::resize`]). An unknown disk is [`BackendError::DeviceNotFound`], a read-only one
    /// [`BackendError::Precondition`]. The definition records the new size of a disk the
    /// backend created.
    fn resize_disk(
        &self,
        id: &VmId,
        disk_id: &str,
        new_size_bytes: u64,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Takes a snapshot of every writable disk: with memory and device state while the VM runs
    /// or is paused (unless `disk_only`), disks only while it is stopped. The new snapshot's
    /// parent is the current one, and it becomes current. A bad name is
    /// [`BackendError::Invalid`], a name the VM has already [`BackendError::SnapshotExists`],
    /// a disk that cannot hold snapshots or a silent guest agent (with `quiesce`)
    /// [`BackendError::Precondition`]; nothing is left half-made.
    fn create_snapshot(
        &self,
        id: &VmId,
        request: SnapshotRequest,
    ) -> impl Future<Output = Result<SnapshotInfo, BackendError>> + Send;

    /// The VM's snapshots, oldest first, the current one marked.
    fn list_snapshots(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, BackendError>> + Send;

    /// Goes back to snapshot `snapshot_id`, which becomes current: disks, and with a memory
    /// snapshot the running guest (a stopped VM is started from it). A disk-only snapshot of a
    /// running VM is [`BackendError::Precondition`] unless `stop_if_running` (then the VM is
    /// forced off first and stays stopped). An unknown snapshot is
    /// [`BackendError::DeviceNotFound`].
    fn revert_snapshot(
        &self,
        id: &VmId,
        snapshot_id: &str,
        stop_if_running: bool,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Deletes snapshot `snapshot_id`; its children stay valid (their parent becomes its
    /// parent).
    fn delete_snapshot(
        &self,
        id: &VmId,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Attaches disk `disk` (checked by [`crate::hotplug::plan_attach_disk`]): the backend
    /// creates its file (blank or overlay) where `placement` says, hot-plugs it while the VM runs
    /// or is paused (SATA and IDE cannot be: [`BackendError::Precondition`]), and records it
    /// in the definition, which it returns. A failed hot-plug removes the file again.
    fn attach_disk(
        &self,
        id: &VmId,
        disk: DiskSpec,
        placement: DiskPlacement,
    ) -> impl Future<Output = Result<VmDefinition, BackendError>> + Send;

    /// Detaches disk `disk_id` (a device id): unplugged while the VM runs (the guest must
    /// release it; one that does not within the backend's unplug timeout is
    /// [`BackendError::Timeout`] and the definition keeps the disk), removed from the
    /// definition. The file of a disk the backend created is deleted only with `delete_file`;
    /// a disk given by path never is. The boot disk and CD-ROMs are refused.
    fn detach_disk(
        &self,
        id: &VmId,
        disk_id: &str,
        delete_file: bool,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Attaches NIC `nic` (hot-plugged while the VM runs), its MAC chosen when it has none and
    /// recorded; `api_id` is the caller's id for it. Returns the NIC as recorded.
    fn attach_nic(
        &self,
        id: &VmId,
        nic: NicSpec,
        api_id: Option<String>,
    ) -> impl Future<Output = Result<NicSpec, BackendError>> + Send;

    /// Detaches NIC `nic_id` (a device id), unplugged while the VM runs (as [`Self::detach_disk`]).
    fn detach_nic(
        &self,
        id: &VmId,
        nic_id: &str,
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
    /// does not answer, is an error ([`BackendError::Precondition`]).
    fn guest_facts(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<GuestFacts, BackendError>> + Send;

    /// Runs a command in a running guest through its agent (see [`g::GuestExec`]); output is
    /// capped at [`g::EXEC_OUTPUT_CAP`] each. A timeout is an answer (`timed_out`), not an error.
    /// No agent answering, or the agent refusing, is [`BackendError::Precondition`].
    fn guest_exec(
        &self,
        id: &VmId,
        exec: g::GuestExec,
    ) -> impl Future<Output = Result<g::GuestExecResult, BackendError>> + Send;

    /// Reads part of a guest file through the agent.
    fn guest_read_file(
        &self,
        id: &VmId,
        read: g::GuestFileRead,
    ) -> impl Future<Output = Result<g::GuestFileData, BackendError>> + Send;

    /// Writes (or appends to) a guest file through the agent; returns the bytes written.
    fn guest_write_file(
        &self,
        id: &VmId,
        write: g::GuestFileWrite,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// Asks the guest's agent to shut the guest down (the VM's end arrives as events).
    fn guest_shutdown(
        &self,
        id: &VmId,
        mode: g::GuestShutdownMode,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Freezes guest filesystems; they are thawed automatically after `auto_thaw`.
    fn guest_fsfreeze(
        &self,
        id: &VmId,
        request: g::FreezeRequest,
    ) -> impl Future<Output = Result<g::FreezeResult, BackendError>> + Send;

    /// Thaws the guest's filesystems.
    fn guest_fsthaw(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<g::ThawResult, BackendError>> + Send;

    /// Sets the guest's clock to `time_ns` (nanoseconds since the epoch; `None`: the host's).
    fn guest_set_time(
        &self,
        id: &VmId,
        time_ns: Option<i64>,
    ) -> impl Future<Output = Result<g::TimeSyncResult, BackendError>> + Send;

    /// The last `lines` lines of the VM's hypervisor log and serial console log, at most
    /// `max_bytes` of each (a longer end is cut at a line start and flagged truncated).
    fn logs(
        &self,
        id: &VmId,
        lines: usize,
        max_bytes: u64,
    ) -> impl Future<Output = Result<VmLogs, BackendError>> + Send;

    /// Connects to the VM's serial console. The backend serves one connection at a time;
    /// a VM that is not running is [`BackendError::Precondition`].
    fn open_console(
        &self,
        id: &VmId,
    ) -> impl Future<Output = Result<ConsoleStream, BackendError>> + Send;

    /// The last `max_bytes` bytes the guest printed on its serial console (from its log).
    fn console_history(
        &self,
        id: &VmId,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<u8>, BackendError>> + Send;

    /// Prepares an incoming live migration of `definition` (a VM this node does not have):
    /// every disk file must already be reachable here (shared storage), except, with
    /// `copy_local`, the disks the backend creates in the VM's own directory: those are created
    /// here (overlays on the same backing image) and served for the source to copy into
    /// ([`mig::IncomingEndpoint::storage`]). The seed (if any) is
    /// stored at [`VmBackend::seed_path`], and a hypervisor with the same device layout waits
    /// for the guest's state (which stays paused until [`Self::finish_incoming`]), on this host
    /// or, with [`mig::IncomingNet::Network`], on the network with TLS. The VM is `migrating` until [`Self::finish_incoming`] or
    /// [`Self::abort_incoming`]. A backend that cannot migrate answers
    /// [`BackendError::Precondition`].
    fn prepare_incoming(
        &self,
        definition: ValidDefinition,
        seed_iso: Option<Vec<u8>>,
        copy_local: bool,
        net: mig::IncomingNet,
    ) -> impl Future<Output = Result<mig::IncomingEndpoint, BackendError>> + Send;

    /// Waits (up to `timeout`) for the incoming migration of VM `id` to complete and its guest
    /// to run here; then the VM is `running` and `MigratedIn` is published.
    fn finish_incoming(
        &self,
        id: &VmId,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Gives up an incoming migration of VM `id`: its hypervisor is ended and the VM forgotten
    /// (disk files outside the VM's own directory are never touched).
    fn abort_incoming(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Sends the running (or paused) guest of VM `id` to `params.uri`, reporting progress to
    /// `progress`. On success the guest is stopped here, ready to be given away
    /// ([`Self::complete_outgoing`]) or taken back ([`Self::cancel_outgoing`]); the VM stays
    /// `migrating`. On failure the guest runs here as before, with the same process.
    fn migrate(
        &self,
        id: &VmId,
        params: mig::MigrationParams,
        progress: mig::ProgressSender,
    ) -> impl Future<Output = Result<mig::MigrationProgress, BackendError>> + Send;

    /// After a migration the target confirmed: ends the stopped hypervisor and forgets VM `id`
    /// (its definition, seed and the files in its own directory; disks elsewhere stay), then
    /// publishes `MigratedOut { target }`.
    fn complete_outgoing(
        &self,
        id: &VmId,
        target: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// After a migration the target did not confirm: the guest runs here again.
    fn cancel_outgoing(&self, id: &VmId) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// A receiver of every VM event from now on.
    fn subscribe(&self) -> broadcast::Receiver<VmEvent>;
}
