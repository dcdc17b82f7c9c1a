//! What can go wrong with an NFS share.

use std::path::PathBuf;
use std::time::Duration;

/// An NFS share could not be validated, mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    /// A field of the share's configuration is not valid; nothing was changed.
    #[error("{field}: {problem}; {allowed}")]
    Invalid {
        /// The configuration field (`config.nfs.server`, ...).
        field: &'static str,
        /// What is wrong with the value.
        problem: String,
        /// What is allowed instead.
        allowed: &'static str,
    },
    /// Reading `/proc/self/mountinfo`, or making the mount point directory, failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Something other than the share is mounted at the mount point; it was left alone.
    #[error(
        "{} already has {found_source} ({found_fstype}) mounted, not {expected}; \
         unmount it or choose another config.nfs.mount_point",
        mount_point.display()
    )]
    WrongMount {
        /// The mount point.
        mount_point: PathBuf,
        /// The source of the topmost mount there.
        found_source: String,
        /// Its filesystem type.
        found_fstype: String,
        /// The share's source (`server:/export`).
        expected: String,
    },
    /// The mount or umount program could not be started (or waited for).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The program did not finish in time and was killed.
    #[error("`{command}` did not finish within {after:?}; it was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// How long it was given.
        after: Duration,
    },
    /// `mount` exited with an error.
    #[error("`{command}` failed ({status}): {output}")]
    MountFailed {
        /// The command line.
        command: String,
        /// Its exit status (`exit status: 32`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The end of its error output (the last 2 KiB, trimmed).
        output: String,
    },
    /// `umount` exited with an error.
    #[error("`{command}` failed ({status}): {output}")]
    UnmountFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its error output (the last 2 KiB, trimmed).
        output: String,
    },
    /// `mount` succeeded, but the mount point does not show the share afterwards.
    #[error(
        "`{command}` succeeded but {} then had {} mounted instead of {expected}",
        mount_point.display(),
        found_source.as_deref().unwrap_or("nothing")
    )]
    NotMountedAfter {
        /// The command line.
        command: String,
        /// The mount point.
        mount_point: PathBuf,
        /// The share's source.
        expected: String,
        /// The source of the topmost mount there afterwards, if any.
        found_source: Option<String>,
    },
    /// `umount` succeeded, but something is still mounted at the mount point (it was stacked).
    #[error(
        "`{command}` succeeded but {found_source} is still mounted at {}",
        mount_point.display()
    )]
    StillMountedAfter {
        /// The command line.
        command: String,
        /// The mount point.
        mount_point: PathBuf,
        /// The source of the mount now on top.
        found_source: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("NFS task failed: {0}")]
    Task(String),
}
