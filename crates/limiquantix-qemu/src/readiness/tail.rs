//! Reading a growing console log line by line.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::ReadinessError;
use limiquantix_vm::readiness::{BootPhase, ReadinessTracker};

/// A console "line" longer than this is cut, so a guest printing no newlines cannot grow memory.
const MAX_LINE: usize = 64 * 1024;

/// Reads a growing console log line by line, from a byte offset.
///
/// The file is read as QEMU appends to it (a stat and a read per poll interval; no guest
/// involvement). A file that shrinks (replaced or truncated) is read again from the start.
#[derive(Debug)]
pub struct SerialLogTail {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Offset of the first byte not yet returned as part of a complete line.
    offset: u64,
    partial: Vec<u8>,
    poll: Duration,
}

impl SerialLogTail {
    /// A tail of `path` starting at `offset` (0 for the whole file; the file's length at QEMU
    /// start to skip earlier boots). The file need not exist yet.
    pub fn new(path: impl Into<PathBuf>, offset: u64) -> Self {
        Self {
            path: path.into(),
            file: None,
            offset,
            partial: Vec::new(),
            poll: Duration::from_millis(100),
        }
    }

    /// Changes how long to wait between reads when nothing new was written.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset just past the last complete line returned (where a new tail would resume).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The complete lines written since the last call, without waiting (empty when none).
    pub async fn read_available(&mut self) -> Result<Vec<String>, ReadinessError> {
        self.read_new()
            .await
            .map_err(|source| ReadinessError::SerialLog {
                path: self.path.clone(),
                source,
            })
    }

    /// Waits until at least one new complete line is written, and returns all of them.
    pub async fn next_lines(&mut self) -> Result<Vec<String>, ReadinessError> {
        loop {
            let lines = self.read_available().await?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn read_new(&mut self) -> std::io::Result<Vec<String>> {
        if self.file.is_none() {
            match tokio::fs::File::open(&self.path).await {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let len = file.metadata().await?.len();
        let read_from = self.offset + self.partial.len() as u64;
        if len < read_from {
            // Truncated or replaced: start over.
            self.offset = 0;
            self.partial.clear();
            self.file = None;
            return Ok(Vec::new());
        }
        if len == read_from {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(read_from)).await?;
        let mut buf = Vec::with_capacity((len - read_from).min(1 << 20) as usize);
        file.take(len - read_from).read_to_end(&mut buf).await?;
        self.partial.extend_from_slice(&buf);
        Ok(self.split_lines())
    }

    /// Takes the complete lines out of the partial buffer.
    fn split_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            lines.push(String::from_utf8_lossy(&self.partial[start..end]).into_owned());
            start = end + 1;
        }
        if self.partial.len() - start > MAX_LINE {
            lines.push(String::from_utf8_lossy(&self.partial[start..]).into_owned());
            start = self.partial.len();
        }
        self.offset += start as u64;
        self.partial.drain(..start);
        lines
    }
}

/// Tails `tail`'s log and feeds every line to `tracker`, sending each phase change on `changes`.
///
/// Keeps following after a terminal phase, so a guest reboot (a new firmware banner or kernel)
/// starts a new boot in the tracker. Returns when every receiver of `changes` is dropped; cancel
/// it earlier by aborting its task.
pub async fn follow_serial_log(
    mut tail: SerialLogTail,
    tracker: Arc<Mutex<ReadinessTracker>>,
    changes: tokio::sync::mpsc::Sender<BootPhase>,
) -> Result<(), ReadinessError> {
    loop {
        let lines = tail.next_lines().await?;
        let new_phases: Vec<BootPhase> = {
            let mut t = lock(&tracker);
            lines.iter().filter_map(|l| t.feed_line(l)).collect()
        };
        for phase in new_phases {
            if changes.send(phase).await.is_err() {
                return Ok(());
            }
        }
        if changes.is_closed() {
            return Ok(());
        }
    }
}

/// The tracker behind a mutex (a poisoned lock still holds a usable tracker).
pub(super) fn lock(
    tracker: &Mutex<ReadinessTracker>,
) -> std::sync::MutexGuard<'_, ReadinessTracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}
