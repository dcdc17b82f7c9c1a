//! cloud-init's own verdict, as `cloud-init status --format json` prints it.

use serde::Deserialize;

/// cloud-init's own verdict, as printed by `cloud-init status --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CloudInitStatus {
    /// `not run`, `running`, `done`, `error` or `disabled`.
    pub status: String,
    /// Newer cloud-init: `degraded done`, `error - running`, ...
    #[serde(default)]
    pub extended_status: Option<String>,
    /// Error messages of the modules that failed.
    #[serde(default)]
    pub errors: Vec<String>,
    /// A one-line description (the datasource and its seed).
    #[serde(default)]
    pub detail: Option<String>,
    /// The datasource's short name (`nocloud`, ...), when known.
    #[serde(default)]
    pub datasource: Option<String>,
}

/// [`CloudInitStatus::status`], as a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudInitState {
    /// cloud-init has not started.
    NotRun,
    /// cloud-init is running.
    Running,
    /// Finished without errors.
    Done,
    /// Finished with errors.
    Error,
    /// Disabled in this guest.
    Disabled,
    /// A value this version does not know.
    Unknown,
}

impl CloudInitStatus {
    /// Parses the JSON printed by `cloud-init status --format json`.
    pub fn parse(json: &[u8]) -> Result<Self, StatusJsonError> {
        serde_json::from_slice(json).map_err(|e| StatusJsonError {
            problem: e.to_string(),
        })
    }

    /// The status as a closed set.
    pub fn state(&self) -> CloudInitState {
        match self.status.as_str() {
            "not run" | "not started" => CloudInitState::NotRun,
            "running" => CloudInitState::Running,
            "done" => CloudInitState::Done,
            "error" => CloudInitState::Error,
            "disabled" => CloudInitState::Disabled,
            _ => CloudInitState::Unknown,
        }
    }
}

/// `cloud-init status` printed something that is not its JSON status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cloud-init status output is not valid JSON: {problem}")]
pub struct StatusJsonError {
    /// The parser's complaint.
    pub problem: String,
}
