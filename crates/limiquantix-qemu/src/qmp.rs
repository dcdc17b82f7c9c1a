//! A thin async QMP client over a Unix socket.
//!
//! The QEMU Machine Protocol is line-delimited JSON: the server greets, the client sends
//! `qmp_capabilities`, then every command carries a numeric `id` that its reply echoes. Events
//! (`{"event": ..., "data": ..., "timestamp": ...}`) arrive at any time, interleaved with replies.
//!
//! [`QmpClient`] keeps one reader task per connection: replies are matched to their caller by id,
//! events go to a [`tokio::sync::broadcast`] channel. Every call has a timeout. Messages are read
//! as [`serde_json::Value`], so unknown fields or enum values from a newer QEMU never break a
//! reply. When the socket closes, pending and later calls fail with [`QmpError::Closed`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

/// Default timeout of one QMP call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the event channel; a receiver that falls further behind loses the oldest events.
const EVENT_CAPACITY: usize = 256;

/// Pause between connection attempts while QEMU creates its socket.
const RETRY_INTERVAL: Duration = Duration::from_millis(5);

/// Longest line accepted from the server (QMP replies are small; `query-*` lists stay far below).
const MAX_LINE: usize = 16 << 20;

/// A QMP failure.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be connected.
    #[error("cannot connect to QMP socket {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No answer within the timeout.
    #[error("QMP {what} got no answer within {after:?}")]
    Timeout {
        /// What was waited for (a command name or `greeting`).
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection closed (QEMU exited, or the socket was shut).
    #[error("QMP connection closed")]
    Closed,
    /// The server sent something that is not QMP.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered the command with an error.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class (`GenericError`, `CommandNotFound`, ...).
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    /// Event name (`SHUTDOWN`, `STOP`, `RESUME`, `RESET`, `GUEST_PANICKED`, ...).
    pub name: String,
    /// The event's `data` (`Value::Null` when absent).
    pub data: Value,
    /// Server timestamp in microseconds since the Unix epoch, when given.
    pub timestamp_us: Option<u64>,
}

/// QEMU's version, from the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QemuVersion {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Micro.
    pub micro: u64,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, QmpError>>>>>;

/// A connected, capability-negotiated QMP session.
#[derive(Debug)]
pub struct QmpClient {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    version: QemuVersion,
    timeout: Duration,
}

impl Drop for QmpClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl QmpClient {
    /// Connects to `path`, reads the greeting and negotiates capabilities, each step within
    /// `timeout` (which also becomes the default for [`QmpClient::execute`]).
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.to_owned(),
                source,
            })?;
        Self::handshake(stream, timeout).await
    }

    /// Connects like [`QmpClient::connect`], retrying while the socket does not exist yet or
    /// refuses connections (QEMU still starting), for at most `wait`.
    pub async fn connect_with_retry(
        path: &Path,
        timeout: Duration,
        wait: Duration,
    ) -> Result<Self, QmpError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match UnixStream::connect(path).await {
                Ok(stream) => return Self::handshake(stream, timeout).await,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                Err(source) => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Runs the QMP handshake on an already connected stream.
    pub async fn handshake(stream: UnixStream, timeout: Duration) -> Result<Self, QmpError> {
        let (read, writer) = stream.into_split();
        let mut read = BufReader::new(read);
        let greeting = tokio::time::timeout(timeout, read_message(&mut read))
            .await
            .map_err(|_| QmpError::Timeout {
                what: "greeting".into(),
                after: timeout,
            })??
            .ok_or(QmpError::Closed)?;
        let version = parse_greeting(&greeting)?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let pending: Pending = Arc::default();
        let (closed_tx, closed) = watch::channel(false);
        let reader = tokio::spawn(read_loop(read, pending.clone(), events.clone(), closed_tx));
        let client = Self {
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(1),
            events,
            closed,
            reader,
            version,
            timeout,
        };
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    /// The QEMU version the greeting announced.
    pub fn version(&self) -> QemuVersion {
        self.version
    }

    /// A receiver for the events that arrive from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the connection closes.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        // An error means the reader is gone, which is closed too.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Runs `command` with optional `arguments` within the client's default timeout and returns
    /// its `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        self.execute_timeout(command, arguments, self.timeout).await
    }

    /// Runs `command` with an explicit timeout.
    pub async fn execute_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        if self.is_closed() {
            return Err(QmpError::Closed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');

        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let outcome = tokio::time::timeout(timeout, async {
            {
                let mut w = self.writer.lock().await;
                w.write_all(&line).await?;
                w.flush().await?;
            }
            rx.await.map_err(|_| QmpError::Closed)?
        })
        .await;
        lock(&self.pending).remove(&id);
        let reply = match outcome {
            Ok(r) => r?,
            Err(_) => {
                return Err(QmpError::Timeout {
                    what: command.to_owned(),
                    after: timeout,
                });
            }
        };
        if let Some(err) = reply.get("error") {
            return Err(QmpError::Command {
                command: command.to_owned(),
                class: str_field(err, "class"),
                desc: str_field(err, "desc"),
            });
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }

    /// `query-status`: QEMU's run state (`running`, `paused`, `prelaunch`, `shutdown`, ...).
    pub async fn query_status(&self) -> Result<String, QmpError> {
        let r = self.execute("query-status", None).await?;
        r.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| QmpError::Protocol(format!("query-status without status: {r}")))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn parse_greeting(v: &Value) -> Result<QemuVersion, QmpError> {
    let qmp = v
        .get("QMP")
        .ok_or_else(|| QmpError::Protocol(format!("expected a QMP greeting, got {v}")))?;
    let q = &qmp["version"]["qemu"];
    let n = |k: &str| q.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(QemuVersion {
        major: n("major"),
        minor: n("minor"),
        micro: n("micro"),
    })
}

/// Reads one JSON message; `None` on end of stream. Blank lines are skipped.
async fn read_message(r: &mut BufReader<OwnedReadHalf>) -> Result<Option<Value>, QmpError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut *r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') && n >= MAX_LINE {
            return Err(QmpError::Protocol(format!(
                "message longer than {MAX_LINE} bytes"
            )));
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        return serde_json::from_slice(text)
            .map(Some)
            .map_err(|e| QmpError::Protocol(format!("invalid JSON from QEMU: {e}")));
    }
}

async fn read_loop(
    mut read: BufReader<OwnedReadHalf>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Sender<bool>,
) {
    loop {
        match read_message(&mut read).await {
            Ok(Some(msg)) => dispatch(msg, &pending, &events),
            Ok(None) => break,
            Err(QmpError::Protocol(p)) => {
                tracing::warn!(problem = %p, "ignoring a malformed QMP message");
            }
            Err(e) => {
                tracing::debug!(error = %e, "QMP connection failed");
                break;
            }
        }
    }
    let _ = closed.send(true);
    // Dropping the senders fails every pending call with `Closed`.
    lock(&pending).clear();
}

fn dispatch(msg: Value, pending: &Pending, events: &broadcast::Sender<QmpEvent>) {
    if let Some(name) = msg.get("event").and_then(Value::as_str) {
        let ts = &msg["timestamp"];
        let timestamp_us = match (ts["seconds"].as_u64(), ts["microseconds"].as_u64()) {
            (Some(s), Some(us)) => Some(s * 1_000_000 + us),
            _ => None,
        };
        let ev = QmpEvent {
            name: name.to_owned(),
            data: msg.get("data").cloned().unwrap_or(Value::Null),
            timestamp_us,
        };
        tracing::trace!(event = %ev.name, "QMP event");
        // No receiver is not an error: events are optional to follow.
        let _ = events.send(ev);
        return;
    }
    if msg.get("return").is_some() || msg.get("error").is_some() {
        match msg.get("id").and_then(Value::as_u64) {
            Some(id) => {
                if let Some(tx) = lock(pending).remove(&id) {
                    let _ = tx.send(Ok(msg));
                } else {
                    tracing::debug!(id, "QMP reply for a call that gave up");
                }
            }
            None => tracing::warn!(reply = %msg, "QMP reply without an id"),
        }
        return;
    }
    tracing::debug!(message = %msg, "unrecognised QMP message");
}

#[cfg(test)]
mod tests;
