//! Operations inside a guest through its agent: running a command, reading and writing files,
//! shutting down from inside, freezing filesystems, setting the clock. The requests and answers
//! of the [`crate::VmBackend`] guest methods, and the limits every backend keeps.

use std::time::Duration;

/// How long a command may run when the request names no time.
pub const EXEC_DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a command may be waited for.
pub const EXEC_MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The most bytes kept of a command's standard output, and of its standard error; the rest is
/// dropped and flagged.
pub const EXEC_OUTPUT_CAP: usize = 1 << 20;
/// The most bytes a command's standard input may hold.
pub const EXEC_INPUT_MAX: usize = 1 << 20;
/// The most bytes one file read or write moves.
pub const FILE_MAX: u64 = 16 << 20;
/// How long filesystems stay frozen when no thaw comes and the request names no time.
pub const FREEZE_DEFAULT: Duration = Duration::from_secs(60);
/// The longest a freeze may last before it is thawed automatically.
pub const FREEZE_MAX: Duration = Duration::from_secs(600);

/// A command to run in the guest. `path` and `args` are an argv: no shell is involved unless
/// the caller names one (`/bin/sh -c ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestExec {
    /// The program (a path, or a name the guest's `PATH` resolves).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `NAME=value` pairs; when any are given they are the whole environment of the command.
    pub env: Vec<(String, String)>,
    /// Standard input, when any (at most [`EXEC_INPUT_MAX`] bytes).
    pub input: Option<Vec<u8>>,
    /// Wait for the command to end (`false`: start it and answer with its pid at once).
    pub wait: bool,
    /// How long to wait at most (at most [`EXEC_MAX_TIMEOUT`]).
    pub timeout: Duration,
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestExecResult {
    /// The guest's process id.
    pub pid: i64,
    /// It ended (within the timeout).
    pub exited: bool,
    /// Its exit status, when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Standard output, at most [`EXEC_OUTPUT_CAP`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most [`EXEC_OUTPUT_CAP`] bytes.
    pub stderr: Vec<u8>,
    /// Standard output was cut (by the cap, or by the agent's own limit).
    pub stdout_truncated: bool,
    /// Standard error was cut.
    pub stderr_truncated: bool,
    /// It was still running when the timeout passed.
    pub timed_out: bool,
    /// After the timeout, a kill was sent (best effort; the command may keep running when the
    /// guest has no `kill`).
    pub kill_sent: bool,
    /// From start to the last status.
    pub duration: Duration,
}

/// A part of a guest file to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFileRead {
    /// The guest path, passed verbatim to the agent.
    pub path: String,
    /// Where to start.
    pub offset: u64,
    /// The most bytes to return (at most [`FILE_MAX`]).
    pub max_bytes: u64,
}

/// What a read returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFileData {
    /// The bytes.
    pub data: Vec<u8>,
    /// The file's size.
    pub total_size: u64,
    /// The read reached the end of the file.
    pub eof: bool,
}

/// A guest file to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFileWrite {
    /// The guest path, passed verbatim to the agent.
    pub path: String,
    /// The bytes (at most [`FILE_MAX`]).
    pub data: Vec<u8>,
    /// Append to the file instead of replacing it.
    pub append: bool,
    /// Permission bits to set afterwards (through `chmod` in the guest).
    pub mode: Option<u32>,
    /// Create missing parent directories first (through `mkdir -p` in the guest).
    pub create_parents: bool,
}

/// How the guest shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestShutdownMode {
    /// Power off.
    Poweroff,
    /// Reboot.
    Reboot,
    /// Halt without powering off.
    Halt,
}

/// Filesystems to freeze.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreezeRequest {
    /// Mount points; empty means every freezable filesystem.
    pub mount_points: Vec<String>,
    /// Thaw automatically after this long if no thaw comes (at most [`FREEZE_MAX`]).
    pub auto_thaw: Duration,
}

/// What a freeze did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreezeResult {
    /// How many filesystems are frozen.
    pub frozen: u32,
    /// Names this freeze (a thaw may pass it back).
    pub token: String,
}

/// What a thaw did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThawResult {
    /// How many filesystems were thawed.
    pub thawed: u32,
    /// How long they were frozen, when this backend froze them.
    pub frozen_for: Option<Duration>,
}

/// What setting the guest clock did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeSyncResult {
    /// The guest's clock minus the time set, before, in nanoseconds (when the guest said).
    pub offset_ns: Option<i64>,
    /// The time set, nanoseconds since the Unix epoch.
    pub set_to_ns: i64,
    /// The system clock was set but something after it failed (the agent's hardware-clock
    /// update), for people.
    pub warning: Option<String>,
}

/// Keeps the first `cap` bytes; the flag says whether anything was dropped.
pub fn cap_output(mut bytes: Vec<u8>, cap: usize) -> (Vec<u8>, bool) {
    if bytes.len() > cap {
        bytes.truncate(cap);
        (bytes, true)
    } else {
        (bytes, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_flagged() {
        assert_eq!(cap_output(vec![1, 2, 3], 3), (vec![1, 2, 3], false));
        assert_eq!(cap_output(vec![1, 2, 3, 4], 3), (vec![1, 2, 3], true));
        assert_eq!(cap_output(Vec::new(), 0), (Vec::new(), false));
    }
}
