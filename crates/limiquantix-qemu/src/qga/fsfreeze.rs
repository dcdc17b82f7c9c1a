//! `guest-fsfreeze-*`: freezing and thawing the guest's filesystems.

use serde_json::{Value, json};

use super::{QgaClient, QgaError};

impl QgaClient {
    /// Freezes the filesystems at `mount_points` (`guest-fsfreeze-freeze-list`), or every
    /// freezable one when empty (`guest-fsfreeze-freeze`); returns how many were frozen.
    pub async fn fsfreeze(&self, mount_points: &[String]) -> Result<u32, QgaError> {
        let (command, args) = freeze_command(mount_points);
        let v = self.execute(command, args).await?;
        count(command, &v)
    }

    /// `guest-fsfreeze-thaw`; returns how many filesystems were thawed.
    pub async fn fsthaw(&self) -> Result<u32, QgaError> {
        let v = self.execute("guest-fsfreeze-thaw", None).await?;
        count("guest-fsfreeze-thaw", &v)
    }

    /// `guest-fsfreeze-status`: `thawed` or `frozen`.
    pub async fn fsfreeze_status(&self) -> Result<String, QgaError> {
        let v = self.execute("guest-fsfreeze-status", None).await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| QgaError::Decode {
                command: "guest-fsfreeze-status".into(),
                problem: format!("expected a status, got {v}"),
            })
    }
}

/// The freeze command and its arguments.
pub(super) fn freeze_command(mount_points: &[String]) -> (&'static str, Option<Value>) {
    if mount_points.is_empty() {
        ("guest-fsfreeze-freeze", None)
    } else {
        (
            "guest-fsfreeze-freeze-list",
            Some(json!({ "mountpoints": mount_points })),
        )
    }
}

/// A count answer.
fn count(command: &str, v: &Value) -> Result<u32, QgaError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| QgaError::Decode {
            command: command.into(),
            problem: format!("expected a count, got {v}"),
        })
}
