//! An async client for the QEMU guest agent (`qemu-ga`) over the VM's QGA Unix socket.
//!
//! The agent speaks QMP-style JSON over a virtio-serial port, but has no greeting and may be
//! absent, slow to start, or left with half a message from an earlier client. Each connection
//! therefore starts with a resync: the client sends a `0xFF` byte (which makes the agent's parser
//! drop any partial input) and `guest-sync-delimited` with a fresh id; the agent answers with a
//! `0xFF` sentinel followed by the id. Everything before the sentinel, and any reply with another
//! id, is stale and dropped.
//!
//! An agent that does not answer the resync in time (not installed, not started yet, or the VM
//! not running) is [`QgaError::AgentUnavailable`], never a hang. After a timeout or an I/O error
//! the connection is dropped, and the next call reconnects and resyncs.
//!
//! Commands: `exec` (`guest-exec`), `file` (`guest-file-*` in chunks), `fsfreeze`,
//! `shutdown` (answered only on refusal), `time`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

mod exec;
mod file;
mod fsfreeze;
mod fsinfo;
mod shutdown;
mod time;
mod types;

#[cfg(test)]
use exec::parse_exec_status;
pub use file::FILE_CHUNK;
pub use types::{
    ExecStatus, GuestCommandInfo, GuestInfo, GuestInterface, GuestIpAddress, GuestOsInfo,
};

/// Default timeout of one agent call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time the agent gets to answer the resync before it counts as absent.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(3);

/// The byte that resets the agent's parser and prefixes its `guest-sync-delimited` answer.
const SENTINEL: u8 = 0xFF;

/// Longest reply line accepted (file reads are capped well below this).
const MAX_LINE: u64 = 64 << 20;

/// A guest agent failure.
#[derive(Debug, thiserror::Error)]
pub enum QgaError {
    /// No agent answers on the socket: the VM is not running, or the agent is not installed or
    /// not started in the guest.
    #[error("guest agent unavailable on {}: {reason}", path.display())]
    AgentUnavailable {
        /// The QGA socket.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// The agent did not answer a command in time.
    #[error("guest agent command {command} got no answer within {after:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("guest agent I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The agent sent something unexpected.
    #[error("guest agent protocol error: {0}")]
    Protocol(String),
    /// The agent answered with an error.
    #[error("guest agent command {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// The error class.
        class: String,
        /// The agent's description.
        desc: String,
    },
    /// A reply did not have the expected shape.
    #[error("guest agent reply to {command} is not understood: {problem}")]
    Decode {
        /// The command.
        command: String,
        /// What was wrong.
        problem: String,
    },
}

/// A connected, resynchronised agent channel.
struct Conn {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

/// A guest agent client for one VM. Calls are serialised over one connection.
pub struct QgaClient {
    path: PathBuf,
    timeout: Duration,
    sync_timeout: Duration,
    conn: tokio::sync::Mutex<Option<Conn>>,
    next_sync: AtomicU64,
}

impl std::fmt::Debug for QgaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QgaClient")
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("sync_timeout", &self.sync_timeout)
            .finish()
    }
}

impl QgaClient {
    /// A client for the agent behind `socket`; nothing is connected until the first call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        Self {
            path: socket.into(),
            timeout: DEFAULT_TIMEOUT,
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
            conn: tokio::sync::Mutex::new(None),
            // Sync ids stay within 31 bits: some agents parse them as int.
            next_sync: AtomicU64::new(seed & 0x3fff_ffff),
        }
    }

    /// Sets the timeout of each command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long the agent gets to answer the resync before it counts as unavailable.
    pub fn with_sync_timeout(mut self, timeout: Duration) -> Self {
        self.sync_timeout = timeout;
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// Runs `command` and returns its `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QgaError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let conn = guard
            .as_mut()
            .ok_or(QgaError::Protocol("no connection".into()))?;
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let res = tokio::time::timeout(self.timeout, round_trip(conn, &msg)).await;
        let reply = match res {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                *guard = None;
                return Err(e);
            }
            Err(_) => {
                *guard = None;
                return Err(QgaError::Timeout {
                    command: command.to_owned(),
                    after: self.timeout,
                });
            }
        };
        if let Some(err) = reply.get("error") {
            let s = |k: &str| {
                err.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            return Err(QgaError::Command {
                command: command.to_owned(),
                class: s("class"),
                desc: s("desc"),
            });
        }
        match reply.get("return") {
            Some(v) => Ok(v.clone()),
            None => Err(QgaError::Protocol(format!("reply without return: {reply}"))),
        }
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, QgaError> {
        let v = self.execute(command, arguments).await?;
        serde_json::from_value(v).map_err(|e| QgaError::Decode {
            command: command.to_owned(),
            problem: e.to_string(),
        })
    }

    /// `guest-ping`: succeeds when the agent answers.
    pub async fn ping(&self) -> Result<(), QgaError> {
        self.execute("guest-ping", None).await.map(|_| ())
    }

    /// `guest-info`.
    pub async fn info(&self) -> Result<GuestInfo, QgaError> {
        self.typed("guest-info", None).await
    }

    /// `guest-get-host-name`.
    pub async fn host_name(&self) -> Result<String, QgaError> {
        #[derive(Deserialize)]
        struct HostName {
            #[serde(rename = "host-name")]
            host_name: String,
        }
        Ok(self
            .typed::<HostName>("guest-get-host-name", None)
            .await?
            .host_name)
    }

    /// `guest-get-osinfo`.
    pub async fn os_info(&self) -> Result<GuestOsInfo, QgaError> {
        self.typed("guest-get-osinfo", None).await
    }

    /// `guest-network-get-interfaces`.
    pub async fn network_interfaces(&self) -> Result<Vec<GuestInterface>, QgaError> {
        self.typed("guest-network-get-interfaces", None).await
    }

    /// Connects and resyncs; any failure means the agent is unavailable.
    async fn connect(&self) -> Result<Conn, QgaError> {
        let unavailable = |reason: String| QgaError::AgentUnavailable {
            path: self.path.clone(),
            reason,
        };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| unavailable(format!("cannot connect: {e}")))?;
        let (read, write) = stream.into_split();
        let mut conn = Conn {
            read: BufReader::new(read),
            write,
        };
        let id = self.next_sync.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
        match tokio::time::timeout(self.sync_timeout, resync(&mut conn, id)).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(unavailable(format!("resync failed: {e}"))),
            Err(_) => Err(unavailable(format!(
                "no answer to guest-sync-delimited within {:?} (is qemu-guest-agent installed \
                 and running in the guest?)",
                self.sync_timeout
            ))),
        }
    }
}

/// Sends the sentinel and `guest-sync-delimited`, then drops everything up to the answer.
async fn resync(conn: &mut Conn, id: u64) -> Result<(), QgaError> {
    let mut msg = vec![SENTINEL];
    msg.extend(
        json!({ "execute": "guest-sync-delimited", "arguments": { "id": id } })
            .to_string()
            .into_bytes(),
    );
    msg.push(b'\n');
    conn.write.write_all(&msg).await?;
    conn.write.flush().await?;
    loop {
        // Skip to the sentinel: what comes before it belongs to an earlier conversation.
        let mut skipped = Vec::new();
        let n = conn.read.read_until(SENTINEL, &mut skipped).await?;
        if n == 0 {
            return Err(QgaError::Protocol("socket closed during resync".into()));
        }
        if skipped.last() != Some(&SENTINEL) {
            continue;
        }
        let Some(reply) = read_json_line(&mut conn.read).await? else {
            return Err(QgaError::Protocol("socket closed during resync".into()));
        };
        if reply.get("return").and_then(Value::as_u64) == Some(id) {
            return Ok(());
        }
        tracing::debug!(reply = %reply, "dropping a stale guest agent reply");
    }
}

/// Writes one command and reads its reply (the next JSON line).
async fn round_trip(conn: &mut Conn, msg: &Value) -> Result<Value, QgaError> {
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    conn.write.write_all(&line).await?;
    conn.write.flush().await?;
    read_json_line(&mut conn.read)
        .await?
        .ok_or_else(|| QgaError::Protocol("socket closed before the reply".into()))
}

/// Reads the next non-empty line as JSON; `None` at end of stream.
async fn read_json_line(r: &mut BufReader<OwnedReadHalf>) -> Result<Option<Value>, QgaError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut *r).take(MAX_LINE).read_until(b'\n', &mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        // A stray sentinel (from a resync answered twice) is not part of the JSON.
        let text: Vec<u8> = buf.iter().copied().filter(|&b| b != SENTINEL).collect();
        let text = text.trim_ascii();
        if text.is_empty() {
            continue;
        }
        return serde_json::from_slice(text)
            .map(Some)
            .map_err(|e| QgaError::Protocol(format!("invalid JSON from the agent: {e}")));
    }
}

/// Decodes an optional base64 field of a reply; absent means empty.
fn decode_b64(command: &str, v: Option<&Value>) -> Result<Vec<u8>, QgaError> {
    match v.and_then(Value::as_str) {
        None => Ok(Vec::new()),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| QgaError::Decode {
                command: command.to_owned(),
                problem: format!("bad base64: {e}"),
            }),
    }
}

#[cfg(test)]
pub(crate) mod tests;
