//! What a backend answers about a VM: its status, its entry (definition and status), where its
//! VNC display listens, and the ends of its logs.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::model::VmDefinition;
use crate::readiness::BootPhase;
use crate::state::VmState;

/// What a VM is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// The run state.
    pub state: VmState,
    /// The hypervisor process id while one exists.
    pub pid: Option<u32>,
    /// When the current hypervisor process was started.
    pub started_at: Option<SystemTime>,
    /// The hypervisor's own run state (QEMU's `query-status`: `running`, `paused`, `io-error`,
    /// ...), when asked for and available.
    pub run_state: Option<String>,
    /// How the last hypervisor process ended (`guest shut down`, `signal 9`, ...), if known.
    pub last_exit: Option<String>,
    /// The guest's boot phase while it runs (see [`crate::readiness`]); `None` when it does
    /// not run.
    pub boot: Option<BootPhase>,
}

/// A VM: its definition, its status and where its disks live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEntry {
    /// The definition as stored.
    pub definition: VmDefinition,
    /// The current status.
    pub status: VmStatus,
    /// The host file of each disk, in the definition's order: the given path, or where the
    /// backend created the overlay or blank disk.
    pub disk_files: Vec<PathBuf>,
}

/// Where a VM's VNC display listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncEndpoint {
    /// Host address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The end of one log file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The file.
    pub path: PathBuf,
    /// The lines, each ending in `\n` except perhaps the last (invalid UTF-8 replaced).
    pub text: String,
    /// How many lines `text` holds.
    pub lines: u32,
    /// True when the file holds more before `text`.
    pub truncated: bool,
    /// The file's size; 0 when it does not exist.
    pub size: u64,
    /// The file's modification time; `None` when it does not exist.
    pub modified: Option<SystemTime>,
}

/// The ends of a VM's logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmLogs {
    /// The hypervisor's own log (QEMU's standard error).
    pub hypervisor: LogTail,
    /// The guest's serial console.
    pub serial: LogTail,
}
