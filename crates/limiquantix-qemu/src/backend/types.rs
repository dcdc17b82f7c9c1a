//! The backend's public value types: configuration, status, events, errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::argv::BootError;
use crate::firmware::{FirmwareError, OvmfPaths};
use crate::persist::PersistError;
use crate::probe::{KvmProbe, ProbeRefused};
use crate::process::ProcessError;
use crate::qmp::QmpError;
use limiquantix_storage::StorageError;
use limiquantix_vm::ResizeError;
use limiquantix_vm::accel::{Accel, AccelError};
use limiquantix_vm::model::{ModelError, VmId};
use limiquantix_vm::state::{VmOp, VmState};

/// Default of [`BackendConfig::max_concurrent_starts`]: on 2 cores, more QEMUs starting at
/// once only slow each other down.
pub const DEFAULT_MAX_CONCURRENT_STARTS: usize = 4;
/// Default of [`BackendConfig::max_concurrent_disk_creations`].
pub const DEFAULT_MAX_CONCURRENT_DISK_CREATIONS: usize = 8;

/// How the backend finds its directories and tools.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Persistent state: `<state_dir>/vms/<vm_id>/` holds `vm.json`, disks, seed, logs.
    pub state_dir: PathBuf,
    /// Runtime files: `<run_dir>/vms/<vm_id>/` holds the QMP and QGA sockets, the pidfile and
    /// the runtime record. Socket paths must stay under 108 bytes, so keep this short.
    pub run_dir: PathBuf,
    /// Accelerator (`auto` picks KVM when `/dev/kvm` opens and the KVM probe guest runs under
    /// it, TCG otherwise; see [`crate::probe`]).
    pub accel: Accel,
    /// The `qemu-system-x86_64` binary.
    pub qemu_binary: PathBuf,
    /// The `qemu-img` binary.
    pub qemu_img: PathBuf,
    /// OVMF images for UEFI guests; `None` refuses UEFI VMs at start.
    pub ovmf: Option<OvmfPaths>,
    /// Default time a graceful stop waits for the guest before forcing it off.
    pub stop_timeout: Duration,
    /// Timeout of each QMP command.
    pub qmp_timeout: Duration,
    /// Time QEMU gets from spawn to a ready QMP socket.
    pub start_timeout: Duration,
    /// Spare PCIe root ports a q35 VM gets for hot-plug (see `argv::ports`).
    pub hotplug_ports: u8,
    /// How long a detach waits for the guest to release the device (QMP `DEVICE_DELETED`).
    pub unplug_timeout: Duration,
    /// How often the metrics collector samples every running VM.
    pub metrics_interval: Duration,
    /// How many QEMUs may be starting at once; more StartVMs wait their turn (until their
    /// deadline).
    pub max_concurrent_starts: usize,
    /// How many defines may be creating disks at once; more wait their turn (until their
    /// deadline).
    pub max_concurrent_disk_creations: usize,
    /// The open-file limit the VM count is checked against (`None`: the process's soft
    /// `RLIMIT_NOFILE` when the backend opens).
    pub nofile_limit: Option<u64>,
    /// How `auto` and `kvm` prove KVM before VMs get it (the probe guest).
    pub kvm_probe: KvmProbe,
}

impl BackendConfig {
    /// Defaults: accelerator `auto`, binaries from `PATH`, OVMF discovered in
    /// `/usr/share/OVMF` (none if absent), a 60 s stop timeout, 10 s QMP calls, 30 s to start,
    /// 4 hot-plug ports, 30 s for a guest to release an unplugged device, a sample of every VM's
    /// usage each 5 s, 4 QEMU starts and 8 disk creations at once, the VM count checked
    /// against the process's open-file limit, the real KVM probe ([`KvmProbe::default`]).
    pub fn new(state_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            accel: Accel::Auto,
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            qemu_img: PathBuf::from("qemu-img"),
            ovmf: OvmfPaths::discover().ok(),
            stop_timeout: Duration::from_secs(60),
            qmp_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
            hotplug_ports: 4,
            unplug_timeout: Duration::from_secs(30),
            metrics_interval: Duration::from_secs(5),
            max_concurrent_starts: DEFAULT_MAX_CONCURRENT_STARTS,
            max_concurrent_disk_creations: DEFAULT_MAX_CONCURRENT_DISK_CREATIONS,
            nofile_limit: None,
            kvm_probe: KvmProbe::default(),
        }
    }
}

/// Extra inputs of [`QemuBackend::define`](crate::QemuBackend::define) that are not part of
/// the definition.
#[derive(Debug, Clone, Default)]
pub struct DefineExtras {
    /// The NoCloud seed ISO to store as `cloud-init.iso` (mode 0600). Seed CD-ROMs of the
    /// definition without a path are pointed at it.
    pub seed_iso: Option<Vec<u8>>,
}

/// Outcome of a graceful stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The guest powered off in time.
    Graceful,
    /// The guest did not power off in time and QEMU was terminated.
    Forced,
    /// QEMU had already exited.
    AlreadyStopped,
}

/// A QEMU backend operation failed, in detail. At the [`limiquantix_vm::VmBackend`] boundary it
/// is sorted into a [`limiquantix_vm::BackendError`] category (see `backend::api`).
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// No VM with this id.
    #[error("VM {vm_id} not found")]
    NotFound {
        /// The id asked for.
        vm_id: VmId,
    },
    /// A different VM with this id exists (an identical definition is accepted again).
    #[error("VM {vm_id} already exists with a different definition")]
    AlreadyExists {
        /// The id.
        vm_id: VmId,
    },
    /// The operation is not allowed in the VM's state (see [`limiquantix_vm::state`]).
    #[error("cannot {op} VM {vm_id}: it is {state}")]
    InvalidTransition {
        /// The VM.
        vm_id: VmId,
        /// Its state.
        state: VmState,
        /// The refused operation.
        op: VmOp,
    },
    /// The request needs a running QEMU and the VM has none.
    #[error("VM {vm_id} is {state}: it has no running QEMU")]
    NotRunning {
        /// The VM.
        vm_id: VmId,
        /// Its state.
        state: VmState,
    },
    /// The definition or an argument is invalid.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The VM cannot boot as defined (nothing bootable, firmware mismatch).
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Creating or inspecting a disk failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// UEFI firmware problem.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// The accelerator cannot be used.
    #[error(transparent)]
    Accel(#[from] AccelError),
    /// `accel kvm` was configured and the KVM probe guest did not run.
    #[error(transparent)]
    KvmProbe(#[from] ProbeRefused),
    /// Reading or writing a state file failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Starting or finding a QEMU process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A QMP command failed.
    #[error("VM {vm_id}: {source}")]
    Qmp {
        /// The VM.
        vm_id: VmId,
        /// The QMP error.
        #[source]
        source: QmpError,
    },
    /// QEMU exited or never became ready while starting.
    #[error("VM {vm_id} failed to start: {reason}; QEMU said: {log_tail}")]
    StartFailed {
        /// The VM.
        vm_id: VmId,
        /// What went wrong.
        reason: String,
        /// The end of `qemu.log`.
        log_tail: String,
    },
    /// The VM has no CD-ROM with this id.
    #[error("VM {vm_id} has no CD-ROM {cdrom_id:?}")]
    NoSuchCdrom {
        /// The VM.
        vm_id: VmId,
        /// The id asked for.
        cdrom_id: String,
    },
    /// A disk resize was refused before the image was touched (unknown or read-only disk, a
    /// size not allowed, a smaller size).
    #[error(transparent)]
    Resize(#[from] ResizeError),
    /// Growing a disk failed: `qemu-img` could not run or refused (the image is in use, say),
    /// or QEMU does not know the disk's block node.
    #[error("VM {vm_id}: cannot grow disk {disk_id:?}: {problem}")]
    Grow {
        /// The VM.
        vm_id: VmId,
        /// The disk.
        disk_id: String,
        /// What went wrong.
        problem: String,
    },
    /// Refused or failed in one of the backend-neutral categories (snapshots: a bad or taken
    /// name, an unknown snapshot, a raw disk, a silent guest agent, a job that failed or timed
    /// out; hot-plug: what the checks of [`limiquantix_vm::hotplug`] refuse); sorted as it is.
    #[error(transparent)]
    Refused(#[from] limiquantix_vm::BackendError),
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A background task failed.
    #[error("backend task failed: {0}")]
    Task(String),
    /// The request waited for its turn (a cap on concurrent work) until its deadline passed;
    /// nothing was changed.
    #[error(
        "VM {vm_id}: waited {waited:?} for a turn among at most {cap} concurrent {what} and the \
         request's deadline passed; nothing was done (retry later, with a longer deadline, or \
         raise the cap)"
    )]
    Queued {
        /// The VM.
        vm_id: VmId,
        /// What is capped (`QEMU starts`, `disk creations`).
        what: &'static str,
        /// The cap.
        cap: usize,
        /// How long the request waited.
        waited: Duration,
    },
    /// Defining one more VM would take the daemon past what its open-file limit serves.
    #[error(
        "cannot define VM {vm_id}: this daemon serves at most {capacity} VMs with its open-file \
         limit (RLIMIT_NOFILE {nofile}, {per_vm} descriptors per VM, {reserve} kept for the rest); \
         raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n) and restart the daemon"
    )]
    TooManyVms {
        /// The VM refused.
        vm_id: VmId,
        /// VMs the limit serves.
        capacity: usize,
        /// The soft RLIMIT_NOFILE.
        nofile: u64,
        /// Descriptors budgeted per VM.
        per_vm: u64,
        /// Descriptors kept for the rest.
        reserve: u64,
    },
    /// Hot-plug cannot be done on this VM now (no free hot-plug port, the device is missing).
    #[error("VM {vm_id}: {problem}")]
    Plug {
        /// The VM.
        vm_id: VmId,
        /// What is wrong.
        problem: String,
    },
    /// The guest did not release an unplugged device in time; the definition keeps it.
    #[error(
        "VM {vm_id}: the guest did not release device {device_id:?} within {after:?} (an \
         unplug needs the guest's cooperation); the device stays in the definition, try again"
    )]
    UnplugTimeout {
        /// The VM.
        vm_id: VmId,
        /// The device.
        device_id: String,
        /// The time waited.
        after: Duration,
    },
}
