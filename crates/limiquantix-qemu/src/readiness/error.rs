//! The errors of the readiness helpers that do I/O.

use std::path::PathBuf;

use crate::qga::QgaError;

/// Errors of the readiness helpers that do I/O.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// The serial log could not be read.
    #[error("reading serial log {path}")]
    SerialLog {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The guest agent did not answer.
    #[error("asking the guest agent for cloud-init's status")]
    Agent(#[source] QgaError),
    /// `cloud-init status` printed something that is not its JSON status.
    #[error("cloud-init status output is not valid JSON: {problem}")]
    StatusJson {
        /// The parser's complaint.
        problem: String,
    },
    /// `cloud-init status` could not run in the guest.
    #[error("cloud-init status did not run in the guest (exit code {exit_code:?}): {stderr}")]
    StatusCommand {
        /// Its exit code, when it exited.
        exit_code: Option<i64>,
        /// The start of its standard error.
        stderr: String,
    },
}
