//! `guest-shutdown`, the command the agent does not answer when it succeeds.

use std::time::Duration;

use serde_json::{Value, json};

use super::{QgaClient, QgaError, read_json_line};
use tokio::io::AsyncWriteExt;

/// How long an error answer to `guest-shutdown` is waited for; silence after it is success.
const REPLY_GRACE: Duration = Duration::from_secs(3);

impl QgaClient {
    /// `guest-shutdown` with `mode` (`powerdown`, `reboot`, `halt`). The agent answers only
    /// when it refuses; silence, the end of the connection or a reset is success (the guest is
    /// going down). The connection is dropped afterwards: a late answer would be stale.
    pub async fn shutdown(&self, mode: &str) -> Result<(), QgaError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let conn = guard
            .as_mut()
            .ok_or(QgaError::Protocol("no connection".into()))?;
        let mut line = shutdown_message(mode).to_string().into_bytes();
        line.push(b'\n');
        let sent = async {
            conn.write.write_all(&line).await?;
            conn.write.flush().await
        }
        .await;
        let answer = match sent {
            Ok(()) => tokio::time::timeout(REPLY_GRACE, read_json_line(&mut conn.read)).await,
            Err(e) => Ok(Err(e.into())),
        };
        *guard = None;
        match answer {
            Ok(Ok(Some(reply))) => shutdown_answer(&reply),
            // Silence, the end of the stream or a reset: the guest is going down.
            Err(_) | Ok(Ok(None)) | Ok(Err(QgaError::Io(_))) => Ok(()),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// The `guest-shutdown` command.
pub(super) fn shutdown_message(mode: &str) -> Value {
    json!({ "execute": "guest-shutdown", "arguments": { "mode": mode } })
}

/// An answer to `guest-shutdown`: an error is the agent's refusal, anything else success.
pub(super) fn shutdown_answer(reply: &Value) -> Result<(), QgaError> {
    match reply.get("error") {
        None => Ok(()),
        Some(err) => {
            let s = |k: &str| {
                err.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Err(QgaError::Command {
                command: "guest-shutdown".into(),
                class: s("class"),
                desc: s("desc"),
            })
        }
    }
}
