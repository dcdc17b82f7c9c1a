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

/// The bytes moved per `guest-file-read` or `guest-file-write` (the agent's messages are
/// base64 JSON lines; small chunks keep each one small).
pub const FILE_CHUNK: usize = 48 * 1024;

impl QgaClient {
    /// `guest-file-open` with `mode` (`rb`, `wb`, `ab`, ...); returns the handle.
    pub async fn file_open(&self, path: &str, mode: &str) -> Result<i64, QgaError> {
        let v = self
            .execute(
                "guest-file-open",
                Some(json!({ "path": path, "mode": mode })),
            )
            .await?;
        v.as_i64().ok_or_else(|| QgaError::Decode {
            command: "guest-file-open".into(),
            problem: format!("expected a handle, got {v}"),
        })
    }

    /// `guest-file-close`.
    pub async fn file_close(&self, handle: i64) -> Result<(), QgaError> {
        self.execute("guest-file-close", Some(json!({ "handle": handle })))
            .await
            .map(|_| ())
    }

    /// `guest-file-seek` to `offset` from the start (`set`) or the end (`end`); returns the
    /// new position.
    pub async fn file_seek(&self, handle: i64, offset: i64, whence: &str) -> Result<u64, QgaError> {
        let args = json!({ "handle": handle, "offset": offset, "whence": whence });
        let v = self.execute("guest-file-seek", Some(args)).await?;
        v.get("position")
            .and_then(Value::as_u64)
            .ok_or_else(|| QgaError::Decode {
                command: "guest-file-seek".into(),
                problem: format!("no position in {v}"),
            })
    }

    /// Reads `max` bytes from `offset` of `path` in [`FILE_CHUNK`]s; returns the bytes, the
    /// file's size and whether the end was reached. The handle is closed in every case.
    pub async fn read_range(
        &self,
        path: &str,
        offset: u64,
        max: usize,
    ) -> Result<(Vec<u8>, u64, bool), QgaError> {
        let handle = self.file_open(path, "rb").await?;
        let result = async {
            let size = self.file_seek(handle, 0, "end").await?;
            let start = i64::try_from(offset.min(size)).unwrap_or(i64::MAX);
            self.file_seek(handle, start, "set").await?;
            let mut out = Vec::new();
            let mut eof = offset >= size;
            while !eof && out.len() < max {
                let count = (max - out.len()).min(FILE_CHUNK);
                let args = json!({ "handle": handle, "count": count });
                let r = self.execute("guest-file-read", Some(args)).await?;
                let chunk = decode_b64("guest-file-read", r.get("buf-b64"))?;
                eof = r.get("eof").and_then(Value::as_bool).unwrap_or(true) || chunk.is_empty();
                out.extend(chunk);
            }
            out.truncate(max);
            let eof = eof || offset + out.len() as u64 >= size;
            Ok::<_, QgaError>((out, size, eof))
        }
        .await;
        let closed = self.file_close(handle).await;
        let out = result?;
        closed?;
        Ok(out)
    }

    /// Writes `data` to `path` in [`FILE_CHUNK`]s, replacing the file or appending to it;
    /// returns the bytes written. The handle is closed in every case.
    pub async fn write_all(&self, path: &str, data: &[u8], append: bool) -> Result<u64, QgaError> {
        let handle = self
            .file_open(path, if append { "ab" } else { "wb" })
            .await?;
        let result = async {
            let mut written = 0u64;
            for chunk in data.chunks(FILE_CHUNK) {
                let r = self
                    .execute("guest-file-write", Some(write_arguments(handle, chunk)))
                    .await?;
                let n = r.get("count").and_then(Value::as_u64).unwrap_or(0);
                if n != chunk.len() as u64 {
                    return Err(QgaError::Protocol(format!(
                        "guest-file-write wrote {n} of {} bytes",
                        chunk.len()
                    )));
                }
                written += n;
            }
            if !data.is_empty() {
                self.execute("guest-file-flush", Some(json!({ "handle": handle })))
                    .await?;
            }
            Ok::<_, QgaError>(written)
        }
        .await;
        let closed = self.file_close(handle).await;
        let written = result?;
        closed?;
        Ok(written)
    }
}

/// The arguments of one `guest-file-write`.
pub(super) fn write_arguments(handle: i64, chunk: &[u8]) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
    json!({ "handle": handle, "buf-b64": b64, "count": chunk.len() })
}
