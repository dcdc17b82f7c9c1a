//! What the ways of importing share: progress reports, checksums, hex, blocking work.

use std::time::{Duration, Instant};

use crate::images::error::ImageError;

/// How often, at most, the progress callback is called during a transfer.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Progress of a transfer, reported to the caller's callback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bytes in the partial file so far (including bytes kept from an earlier, resumed attempt).
    pub done: u64,
    /// Total size when known.
    pub total: Option<u64>,
    /// Average transfer rate of this import, in bytes per second.
    pub bytes_per_sec: u64,
}

/// A stream of byte chunks sent by a client; an `Err` carries why the client's stream broke.
pub type ChunkStream<'a> =
    &'a mut (dyn tokio_stream::Stream<Item = Result<Vec<u8>, String>> + Send + Unpin);

/// Rate limiter and rate computation for progress callbacks.
pub(super) struct Reporter<'a> {
    callback: &'a mut (dyn FnMut(&ImportProgress) + Send),
    started: Instant,
    start_offset: u64,
    last: Option<Instant>,
    /// A report the rate limit held back, to send when the transfer goes quiet.
    held: Option<(u64, Option<u64>)>,
}

impl<'a> Reporter<'a> {
    /// A reporter calling `callback`, counting the rate from `start_offset` bytes.
    pub(super) fn new(
        callback: &'a mut (dyn FnMut(&ImportProgress) + Send),
        start_offset: u64,
    ) -> Self {
        Reporter {
            callback,
            started: Instant::now(),
            start_offset,
            last: None,
            held: None,
        }
    }

    /// Reports `done` of `total` bytes; at most every [`PROGRESS_EVERY`] unless `force`.
    pub(super) fn report(&mut self, done: u64, total: Option<u64>, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|t| now - t < PROGRESS_EVERY) {
            self.held = Some((done, total));
            return;
        }
        self.held = None;
        self.last = Some(now);
        let secs = (now - self.started).as_secs_f64();
        let moved = done.saturating_sub(self.start_offset) as f64;
        let bytes_per_sec = if secs > 0.0 { (moved / secs) as u64 } else { 0 };
        (self.callback)(&ImportProgress {
            done,
            total,
            bytes_per_sec,
        });
    }

    /// Sends the report the rate limit held back, if any: for a transfer that stalls right
    /// after a burst, so the caller does not see the state before the burst.
    pub(super) fn flush(&mut self) {
        if let Some((done, total)) = self.held {
            self.report(done, total, true);
        }
    }
}

/// Normalises and checks a sha256 argument.
pub(in crate::images) fn parse_sha256(s: &str) -> Result<String, ImageError> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_prefix("sha256:").unwrap_or(&s);
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_owned())
    } else {
        Err(ImageError::InvalidChecksum(s.to_owned()))
    }
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs blocking file work off the async runtime.
pub(in crate::images) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
