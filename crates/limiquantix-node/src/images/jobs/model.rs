//! The registry's vocabulary: limits, requests, states, statuses and errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::images::error::ImageError;

/// Longest job id a caller may choose.
pub const MAX_JOB_ID_LEN: usize = 64;

/// How many jobs the registry holds, and for how long.
#[derive(Clone, Debug)]
pub struct JobLimits {
    /// Jobs that may run at once; a start beyond this is refused.
    pub max_active: usize,
    /// Finished jobs kept; beyond this the oldest are dropped.
    pub max_finished: usize,
    /// How long a finished job stays visible.
    pub keep_finished: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_active: 8,
            max_finished: 64,
            keep_finished: Duration::from_secs(3600),
        }
    }
}

/// What a download job fetches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// The caller's id for the job; one is generated when `None`.
    pub job_id: Option<String>,
    /// The caller's id of the image, echoed back in the job's status.
    pub image_id: String,
    /// The `http://` or `https://` URL.
    pub url: String,
    /// The image's name in the library; derived from the URL when `None`.
    pub name: Option<String>,
    /// Expected sha256 (64 hex digits, any case, optional `sha256:` prefix).
    pub sha256: Option<String>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Registered; the transfer has not begun.
    Pending,
    /// Receiving bytes.
    Downloading,
    /// Every byte is in; the checksum and the format are being checked.
    Verifying,
    /// The image is in the library.
    Completed,
    /// The import failed; nothing is visible in the library.
    Failed,
    /// Stopped by a cancel; its partial files were removed.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    /// The state's name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Downloading => "downloading",
            JobState::Verifying => "verifying",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's id.
    pub job_id: String,
    /// The caller's id of the image.
    pub image_id: String,
    /// The image's name in the library.
    pub name: String,
    /// The job's state.
    pub state: JobState,
    /// Bytes received so far (a resumed download counts the bytes kept from before).
    pub bytes_done: u64,
    /// The image's size, once known.
    pub bytes_total: Option<u64>,
    /// Average transfer rate, bytes per second.
    pub bytes_per_sec: u64,
    /// Where the image is, once completed.
    pub path: Option<PathBuf>,
    /// The image's sha256, once completed.
    pub sha256: Option<String>,
    /// Why the job failed.
    pub error: Option<String>,
}

impl JobStatus {
    /// Share received, 0 to 100: 100 once completed, 0 while the size is unknown.
    pub fn percent(&self) -> u32 {
        match (self.state, self.bytes_total) {
            (JobState::Completed, _) => 100,
            (_, Some(total)) if total > 0 => (self.bytes_done.min(total) * 100 / total) as u32,
            _ => 0,
        }
    }

    /// Seconds left at the average rate, when the size and the rate are known.
    pub fn eta_secs(&self) -> Option<u64> {
        let total = self.bytes_total?;
        if self.state.is_finished() || self.bytes_per_sec == 0 {
            return None;
        }
        Some(
            total
                .saturating_sub(self.bytes_done)
                .div_ceil(self.bytes_per_sec),
        )
    }
}

/// Why the registry refused a request.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A job id breaking the rules.
    #[error(
        "invalid job id {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-' (a UUID fits)"
    )]
    InvalidId(String),
    /// No job of that id (never started, or finished long enough ago to be forgotten).
    #[error("no download job {0:?} on this node (finished jobs are kept for a limited time)")]
    NotFound(String),
    /// The id names a job started with another request.
    #[error("download job {0:?} exists with another request; use a new job id")]
    Conflict(String),
    /// Another job in progress fetches an image of the same name.
    #[error("download job {job_id:?} is already fetching image {name:?}; wait for it or cancel it")]
    NameBusy {
        /// The image name.
        name: String,
        /// The job fetching it.
        job_id: String,
    },
    /// The registry runs as many jobs as it may.
    #[error("{0} downloads are in progress, the most this node runs at once; wait or cancel one")]
    TooMany(usize),
    /// A cancel of a job that ended otherwise.
    #[error("download job {job_id:?} has already {state}; only a job in progress can be cancelled")]
    Finished {
        /// The job.
        job_id: String,
        /// How it ended.
        state: JobState,
    },
    /// A cancelled job did not stop in time.
    #[error(
        "download job {0:?} was asked to stop and has not stopped yet; ask for its status later"
    )]
    Slow(String),
    /// The request or the library refused.
    #[error(transparent)]
    Image(#[from] ImageError),
}
