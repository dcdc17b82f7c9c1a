//! `guest-get-time` and `guest-set-time`.

use serde_json::{Value, json};

use super::{QgaClient, QgaError};

impl QgaClient {
    /// The guest's clock, nanoseconds since the epoch.
    pub async fn get_time(&self) -> Result<i64, QgaError> {
        let v = self.execute("guest-get-time", None).await?;
        v.as_i64().ok_or_else(|| QgaError::Decode {
            command: "guest-get-time".into(),
            problem: format!("expected nanoseconds, got {v}"),
        })
    }

    /// `guest-set-time` to `time_ns` (nanoseconds since the epoch); the agent then writes the
    /// hardware clock.
    pub async fn set_time(&self, time_ns: i64) -> Result<(), QgaError> {
        self.execute("guest-set-time", Some(set_time_arguments(time_ns)))
            .await
            .map(|_| ())
    }
}

/// The arguments of `guest-set-time`.
pub(super) fn set_time_arguments(time_ns: i64) -> Value {
    json!({ "time": time_ns })
}
