//! Reading guest files through `guest-file-open`/`read`/`close`.

use serde_json::{Value, json};

use super::{QgaClient, QgaError, decode_b64};

impl QgaClient {
    /// Reads up to `max_bytes` of a guest file (`guest-file-open`/`read`/`close`).
    pub async fn read_file(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, QgaError> {
        let handle = self
            .execute(
                "guest-file-open",
                Some(json!({ "path": path, "mode": "r" })),
            )
            .await?;
        let handle = handle.as_i64().ok_or_else(|| QgaError::Decode {
            command: "guest-file-open".into(),
            problem: format!("expected a handle, got {handle}"),
        })?;
        let mut out = Vec::new();
        let result = async {
            while out.len() < max_bytes {
                let count = (max_bytes - out.len()).min(48 * 1024);
                let r = self
                    .execute(
                        "guest-file-read",
                        Some(json!({ "handle": handle, "count": count })),
                    )
                    .await?;
                out.extend(decode_b64("guest-file-read", r.get("buf-b64"))?);
                if r.get("eof").and_then(Value::as_bool).unwrap_or(true) {
                    break;
                }
            }
            Ok::<_, QgaError>(())
        }
        .await;
        let closed = self
            .execute("guest-file-close", Some(json!({ "handle": handle })))
            .await;
        result?;
        closed?;
        out.truncate(max_bytes);
        Ok(out)
    }
}
