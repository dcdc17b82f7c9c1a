//! Imports into the library: a copy of a local file or an HTTP(S) download, hashed on the way,
//! checked, then linked into place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::{ImageEntry, ImageError, ImageLibrary, check_importable, derive_name, validate_name};

/// How often, at most, the progress callback is called during a transfer.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Read buffer of local copies.
const COPY_BUF: usize = 1 << 20;

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportSource {
    /// A file on the daemon's host, copied into the library.
    Path(PathBuf),
    /// An `http://` or `https://` URL, downloaded (resumable).
    Url(String),
}

impl ImportSource {
    /// `http://...` and `https://...` are URLs; anything else is a path.
    pub fn parse(source: &str) -> Self {
        let lower = source.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            ImportSource::Url(source.to_owned())
        } else {
            ImportSource::Path(PathBuf::from(source))
        }
    }

    fn describe(&self) -> String {
        match self {
            ImportSource::Path(p) => p.display().to_string(),
            ImportSource::Url(u) => u.clone(),
        }
    }
}

/// What to import and how to check it.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// The source.
    pub source: ImportSource,
    /// The image name; derived from the source's last path segment when `None`.
    pub name: Option<String>,
    /// Expected sha256 (64 hex digits, any case); the import fails and keeps nothing on mismatch.
    pub sha256: Option<String>,
}

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

/// The result of a successful import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The new image.
    pub image: ImageEntry,
    /// sha256 of its content (lowercase hex).
    pub sha256: String,
    /// Bytes that were already present from an interrupted download and not transferred again.
    pub resumed_from: u64,
}

/// What the library remembers about a partial download, to resume it only against the same URL
/// and the same content.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct PartialMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl PartialMeta {
    /// The `If-Range` validator: a strong ETag, else the Last-Modified date.
    fn validator(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if !etag.starts_with("W/") => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// Files of one import in `.partial/`.
struct Partial {
    part: PathBuf,
    meta: PathBuf,
    lock: PathBuf,
}

impl Partial {
    fn discard(&self) {
        for p in [&self.part, &self.meta] {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove partial import file");
            }
        }
    }
}

/// Rate limiter and rate computation for progress callbacks.
struct Reporter<'a> {
    callback: &'a mut (dyn FnMut(&ImportProgress) + Send),
    started: Instant,
    start_offset: u64,
    last: Option<Instant>,
}

impl<'a> Reporter<'a> {
    fn new(callback: &'a mut (dyn FnMut(&ImportProgress) + Send), start_offset: u64) -> Self {
        Reporter {
            callback,
            started: Instant::now(),
            start_offset,
            last: None,
        }
    }

    fn report(&mut self, done: u64, total: Option<u64>, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|t| now - t < PROGRESS_EVERY) {
            return;
        }
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
}

/// Normalises and checks a sha256 argument.
fn parse_sha256(s: &str) -> Result<String, ImageError> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_prefix("sha256:").unwrap_or(&s);
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_owned())
    } else {
        Err(ImageError::InvalidChecksum(s.to_owned()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl ImageLibrary {
    /// Imports an image. The content is hashed on the way; it becomes visible in the library only
    /// after the checksum (when given) and the format check pass. `progress` is called during the
    /// transfer, at most every 100 ms, and once at the end.
    pub async fn import(
        &self,
        request: ImportRequest,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        let name = match &request.name {
            Some(n) => n.clone(),
            None => derive_name(&request.source.describe())?,
        };
        if let ImportSource::Url(url) = &request.source {
            reqwest::Url::parse(url).map_err(|e| ImageError::InvalidSource {
                source_desc: url.clone(),
                reason: e.to_string(),
            })?;
        }
        let fill = match &request.source {
            ImportSource::Path(p) => Fill::Path(p),
            ImportSource::Url(u) => Fill::Url(u),
        };
        self.import_with(&name, request.sha256.as_deref(), fill, progress)
            .await
    }

    /// Imports an image whose bytes a client sends as a stream of chunks (an upload). `size`,
    /// when known, is checked against what arrives; a stream error aborts the import and keeps
    /// nothing.
    pub async fn upload(
        &self,
        name: &str,
        sha256: Option<&str>,
        size: Option<u64>,
        chunks: ChunkStream<'_>,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        self.import_with(name, sha256, Fill::Upload { chunks, size }, progress)
            .await
    }

    async fn import_with(
        &self,
        name: &str,
        sha256: Option<&str>,
        fill: Fill<'_>,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        let name = name.to_owned();
        validate_name(&name)?;
        let expected = sha256.map(parse_sha256).transpose()?;
        let lib = self.clone();
        let n = name.clone();
        blocking(move || lib.ensure_free(&n)).await?;

        let dir = self.partial_dir();
        let partial = Partial {
            part: dir.join(format!("{name}.part")),
            meta: dir.join(format!("{name}.meta")),
            lock: dir.join(format!("{name}.lock")),
        };
        let lock = std::fs::File::create(&partial.lock)
            .map_err(ImageError::io("create", &partial.lock))?;
        if lock.try_lock().is_err() {
            return Err(ImageError::Busy(name));
        }
        tracing::info!(image = %name, source = %fill.describe(), "image import started");
        let result = self
            .import_locked(fill, &name, expected, &partial, progress)
            .await;
        let _ = std::fs::remove_file(&partial.lock);
        drop(lock);
        match &result {
            Ok(o) => {
                tracing::info!(image = %name, bytes = o.image.size_bytes, sha256 = %o.sha256, "image imported")
            }
            Err(e) => tracing::warn!(image = %name, error = %e, "image import failed"),
        }
        result
    }

    async fn import_locked(
        &self,
        fill: Fill<'_>,
        name: &str,
        expected: Option<String>,
        partial: &Partial,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        let (sha256, resumed_from) = match fill {
            Fill::Path(src) => (copy_local(src, partial, progress).await?, 0),
            Fill::Url(url) => self.download(url, partial, progress).await?,
            Fill::Upload { chunks, size } => {
                (receive_upload(chunks, size, partial, progress).await?, 0)
            }
        };
        if let Some(expected) = expected
            && expected != sha256
        {
            partial.discard();
            return Err(ImageError::ChecksumMismatch {
                expected,
                actual: sha256,
            });
        }
        let lib = self.clone();
        let (name, part, meta) = (name.to_owned(), partial.part.clone(), partial.meta.clone());
        let image = blocking(move || {
            let result = lib.publish(&name, &part);
            if result.is_err() {
                Partial {
                    part,
                    meta,
                    lock: PathBuf::new(),
                }
                .discard();
            } else {
                let _ = std::fs::remove_file(&meta);
            }
            result
        })
        .await?;
        Ok(ImportOutcome {
            image,
            sha256,
            resumed_from,
        })
    }

    /// Checks the format of a complete partial file and links it into place without replacing
    /// anything; the partial file is removed.
    fn publish(&self, name: &str, part: &Path) -> Result<ImageEntry, ImageError> {
        use std::io::Read as _;
        use std::os::unix::fs::PermissionsExt as _;
        let file = std::fs::File::open(part).map_err(ImageError::io("open", part))?;
        let size_bytes = file
            .metadata()
            .map_err(ImageError::io("inspect", part))?
            .len();
        if size_bytes == 0 {
            return Err(ImageError::Empty(name.to_owned()));
        }
        let mut header = Vec::with_capacity(super::HEADER_LEN);
        (&file)
            .take(super::HEADER_LEN as u64)
            .read_to_end(&mut header)
            .map_err(ImageError::io("read", part))?;
        let format = check_importable(&header, name)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|()| file.sync_all())
            .map_err(ImageError::io("sync", part))?;
        self.ensure_free(name)?;
        let path = self.dir.join(name);
        match std::fs::hard_link(part, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ImageError::AlreadyExists(name.to_owned()));
            }
            Err(e) => return Err(ImageError::io("link", &path)(e)),
        }
        std::fs::remove_file(part).map_err(ImageError::io("remove", part))?;
        super::sync_dir(&self.dir)?;
        Ok(ImageEntry {
            name: name.to_owned(),
            path,
            size_bytes,
            format,
        })
    }

    /// Downloads `url` into the partial file, resuming what an earlier attempt left when the
    /// server supports ranges and the content did not change. Returns the sha256 and the offset
    /// the download resumed from.
    async fn download(
        &self,
        url: &str,
        partial: &Partial,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<(String, u64), ImageError> {
        let previous: Option<PartialMeta> = std::fs::read(&partial.meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut meta = match previous {
            Some(m) if m.url == url => m,
            _ => {
                partial.discard();
                PartialMeta::default()
            }
        };
        let part = partial.part.clone();
        let (mut offset, mut hasher) = blocking(move || hash_existing(&part)).await?;
        let resumed_from = offset;
        if offset > 0 {
            tracing::info!(url, offset, "resuming an interrupted download");
        }
        let mut reporter = Reporter::new(progress, offset);
        let mut total = None;
        let mut failures = 0u32;
        reporter.report(offset, total, true);
        loop {
            let attempt = self
                .download_attempt(
                    url,
                    partial,
                    &mut meta,
                    &mut offset,
                    &mut total,
                    &mut hasher,
                    &mut reporter,
                )
                .await;
            match attempt {
                Ok(()) => break,
                Err(AttemptError::Fatal(e)) => {
                    partial.discard();
                    return Err(e);
                }
                Err(AttemptError::Retry { error, progressed }) => {
                    if progressed {
                        failures = 0;
                    }
                    failures += 1;
                    if failures > self.http.retries {
                        return Err(error);
                    }
                    tracing::warn!(url, offset, attempt = failures, error = %error, "download interrupted; retrying");
                    tokio::time::sleep(self.http.retry_delay).await;
                }
            }
        }
        reporter.report(offset, total.or(Some(offset)), true);
        Ok((hex(&hasher.finalize()), resumed_from))
    }

    /// One HTTP request: appends what it receives to the partial file and the hash.
    #[allow(clippy::too_many_arguments)]
    async fn download_attempt(
        &self,
        url: &str,
        partial: &Partial,
        meta: &mut PartialMeta,
        offset: &mut u64,
        total: &mut Option<u64>,
        hasher: &mut Sha256,
        reporter: &mut Reporter<'_>,
    ) -> Result<(), AttemptError> {
        let transfer = |source| AttemptError::Retry {
            error: ImageError::Transfer {
                url: url.to_owned(),
                source,
            },
            progressed: false,
        };
        let mut request = self.client(url).map_err(AttemptError::Fatal)?.get(url);
        if *offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
            if let Some(v) = meta.validator() {
                request = request.header(IF_RANGE, v);
            }
        }
        let mut response = request.send().await.map_err(transfer)?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_range = header(CONTENT_RANGE);
        let restart = |offset: &mut u64, hasher: &mut Sha256| -> Result<(), AttemptError> {
            *offset = 0;
            *hasher = Sha256::new();
            truncate(&partial.part).map_err(AttemptError::Fatal)
        };
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let (start, len) = parse_content_range(content_range.as_deref());
                if start != Some(*offset) {
                    restart(offset, hasher)?;
                    return Err(AttemptError::retry_status(url, status));
                }
                *total = len;
            }
            StatusCode::OK => {
                if *offset > 0 {
                    tracing::info!(url, "server sent the whole file; starting over");
                    restart(offset, hasher)?;
                }
                *total = response.content_length();
                *meta = PartialMeta {
                    url: url.to_owned(),
                    etag: header(ETAG),
                    last_modified: header(LAST_MODIFIED),
                };
                let bytes = serde_json::to_vec(meta).unwrap_or_default();
                std::fs::write(&partial.meta, bytes)
                    .map_err(|e| AttemptError::Fatal(ImageError::io("write", &partial.meta)(e)))?;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if *offset > 0 => {
                // Complete already when the server's size is what we have.
                let (_, len) = parse_content_range(content_range.as_deref());
                if len == Some(*offset) {
                    *total = len;
                    return Ok(());
                }
                restart(offset, hasher)?;
                return Err(AttemptError::retry_status(url, status));
            }
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                return Err(AttemptError::retry_status(url, s));
            }
            s => {
                return Err(AttemptError::Fatal(ImageError::HttpStatus {
                    url: url.to_owned(),
                    status: s.as_u16(),
                }));
            }
        }

        let io_err = |op| {
            let path = partial.part.clone();
            move |e| AttemptError::Fatal(ImageError::io(op, path)(e))
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial.part)
            .await
            .map_err(io_err("open"))?;
        let start = *offset;
        let body = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    file.write_all(&chunk).await.map_err(io_err("write"))?;
                    hasher.update(&chunk);
                    *offset += chunk.len() as u64;
                    reporter.report(*offset, *total, false);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        file.flush().await.map_err(io_err("write"))?;
        file.sync_all().await.map_err(io_err("sync"))?;
        let progressed = *offset > start;
        if let Err(source) = body {
            return Err(AttemptError::Retry {
                error: ImageError::Transfer {
                    url: url.to_owned(),
                    source,
                },
                progressed,
            });
        }
        if let Some(expected) = *total
            && *offset != expected
        {
            return Err(AttemptError::Retry {
                error: ImageError::Incomplete {
                    url: url.to_owned(),
                    got: *offset,
                    expected,
                },
                progressed,
            });
        }
        Ok(())
    }
}

/// A stream of byte chunks sent by a client; an `Err` carries why the client's stream broke.
pub type ChunkStream<'a> =
    &'a mut (dyn tokio_stream::Stream<Item = Result<Vec<u8>, String>> + Send + Unpin);

/// Where the bytes of an import come from.
enum Fill<'a> {
    Path(&'a Path),
    Url(&'a str),
    Upload {
        chunks: ChunkStream<'a>,
        size: Option<u64>,
    },
}

impl Fill<'_> {
    fn describe(&self) -> String {
        match self {
            Fill::Path(p) => p.display().to_string(),
            Fill::Url(u) => (*u).to_owned(),
            Fill::Upload { .. } => "upload".to_owned(),
        }
    }
}

/// Writes an uploaded stream into the partial file, hashing it.
async fn receive_upload(
    chunks: ChunkStream<'_>,
    size: Option<u64>,
    partial: &Partial,
    progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<String, ImageError> {
    use tokio_stream::StreamExt as _;
    partial.discard();
    let result = async {
        let io = |op| ImageError::io(op, partial.part.clone());
        let mut file = tokio::fs::File::create(&partial.part)
            .await
            .map_err(io("create"))?;
        let mut hasher = Sha256::new();
        let mut reporter = Reporter::new(progress, 0);
        let mut done = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|reason| ImageError::Upload { reason })?;
            file.write_all(&chunk).await.map_err(io("write"))?;
            hasher.update(&chunk);
            done += chunk.len() as u64;
            reporter.report(done, size, false);
        }
        file.sync_all().await.map_err(io("sync"))?;
        if let Some(expected) = size
            && expected != done
        {
            return Err(ImageError::Upload {
                reason: format!("received {done} of {expected} bytes"),
            });
        }
        reporter.report(done, Some(done), true);
        Ok(hex(&hasher.finalize()))
    }
    .await;
    if result.is_err() {
        partial.discard();
    }
    result
}

/// Why one download attempt ended without the whole file.
enum AttemptError {
    /// Worth another attempt (resuming).
    Retry {
        /// What went wrong.
        error: ImageError,
        /// Whether this attempt received bytes (resets the retry budget).
        progressed: bool,
    },
    /// Not worth retrying; the partial file is discarded.
    Fatal(ImageError),
}

impl AttemptError {
    fn retry_status(url: &str, status: StatusCode) -> Self {
        AttemptError::Retry {
            error: ImageError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            },
            progressed: false,
        }
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`) into (start, total).
fn parse_content_range(value: Option<&str>) -> (Option<u64>, Option<u64>) {
    let Some(rest) = value.and_then(|v| v.trim().strip_prefix("bytes ")) else {
        return (None, None);
    };
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range
        .split_once('-')
        .and_then(|(s, _)| s.trim().parse().ok());
    (start, total.trim().parse().ok())
}

fn truncate(path: &Path) -> Result<(), ImageError> {
    std::fs::File::create(path)
        .map(drop)
        .map_err(ImageError::io("truncate", path))
}

/// Hashes what an earlier attempt left in the partial file; (0, empty hash) when there is none.
fn hash_existing(part: &Path) -> Result<(u64, Sha256), ImageError> {
    let mut hasher = Sha256::new();
    match std::fs::File::open(part) {
        Ok(mut f) => {
            let n = std::io::copy(&mut f, &mut hasher).map_err(ImageError::io("read", part))?;
            Ok((n, hasher))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, hasher)),
        Err(e) => Err(ImageError::io("open", part)(e)),
    }
}

/// Copies a local regular file into the partial file, hashing it, off the async runtime; progress
/// crosses back through a watch channel.
async fn copy_local(
    src: &Path,
    partial: &Partial,
    progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<String, ImageError> {
    partial.discard();
    let (tx, mut rx) = tokio::sync::watch::channel(ImportProgress::default());
    let (src, part) = (src.to_path_buf(), partial.part.clone());
    let job = tokio::task::spawn_blocking(move || copy_and_hash(&src, &part, &tx));
    let mut reporter = Reporter::new(progress, 0);
    while rx.changed().await.is_ok() {
        let p = *rx.borrow_and_update();
        reporter.report(p.done, p.total, false);
    }
    let result = job
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    match result {
        Ok((sha, size)) => {
            reporter.report(size, Some(size), true);
            Ok(sha)
        }
        Err(e) => {
            partial.discard();
            Err(e)
        }
    }
}

fn copy_and_hash(
    src: &Path,
    part: &Path,
    tx: &tokio::sync::watch::Sender<ImportProgress>,
) -> Result<(String, u64), ImageError> {
    use std::io::{Read as _, Write as _};
    let invalid = |reason: &str| ImageError::InvalidSource {
        source_desc: src.display().to_string(),
        reason: reason.to_owned(),
    };
    let mut input = std::fs::File::open(src).map_err(|e| invalid(&e.to_string()))?;
    let meta = input.metadata().map_err(ImageError::io("inspect", src))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    let total = meta.len();
    let mut out = std::fs::File::create(part).map_err(ImageError::io("create", part))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUF];
    let mut done = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::io("read", src)(e)),
        };
        out.write_all(&buf[..n])
            .map_err(ImageError::io("write", part))?;
        hasher.update(&buf[..n]);
        done += n as u64;
        tx.send_replace(ImportProgress {
            done,
            total: Some(total),
            bytes_per_sec: 0,
        });
    }
    out.sync_all().map_err(ImageError::io("sync", part))?;
    Ok((hex(&hasher.finalize()), done))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn parses_content_ranges() {
        assert_eq!(
            parse_content_range(Some("bytes 100-199/200")),
            (Some(100), Some(200))
        );
        assert_eq!(parse_content_range(Some("bytes */200")), (None, Some(200)));
        assert_eq!(parse_content_range(Some("bytes 5-9/*")), (Some(5), None));
        assert_eq!(parse_content_range(None), (None, None));
    }

    #[test]
    fn checks_sha256_arguments() {
        let good = "AB".repeat(32);
        assert_eq!(parse_sha256(&good).unwrap(), "ab".repeat(32));
        assert_eq!(
            parse_sha256(&format!("sha256:{good}")).unwrap(),
            "ab".repeat(32)
        );
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn classifies_sources() {
        assert_eq!(
            ImportSource::parse("HTTPS://x/y"),
            ImportSource::Url("HTTPS://x/y".into())
        );
        assert_eq!(
            ImportSource::parse("./y.img"),
            ImportSource::Path("./y.img".into())
        );
    }
}
