//! HTTP(S) downloads into the partial file, resumed with `Range` requests (guarded by
//! `If-Range`) after an interruption, within this import or across imports.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::common::{ImportProgress, PROGRESS_EVERY, Reporter, blocking, hex};
use super::partial::{Partial, PartialMeta, hash_existing, truncate};
use crate::images::error::ImageError;
use crate::images::library::ImageLibrary;

impl ImageLibrary {
    /// Downloads `url` into the partial file, resuming what an earlier attempt left when the
    /// server supports ranges and the content did not change. Returns the sha256 and the offset
    /// the download resumed from.
    pub(super) async fn download(
        &self,
        url: &str,
        partial: &Partial,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<(String, u64), ImageError> {
        let previous: Option<PartialMeta> = std::fs::read(&partial.meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let meta = match previous {
            Some(m) if m.url == url => m,
            _ => {
                partial.discard();
                PartialMeta::default()
            }
        };
        let part = partial.part.clone();
        let (offset, hasher) = blocking(move || hash_existing(&part)).await?;
        let resumed_from = offset;
        if offset > 0 {
            tracing::info!(url, offset, "resuming an interrupted download");
        }
        let mut download = Download {
            url,
            partial,
            meta,
            offset,
            total: None,
            hasher,
            reporter: Reporter::new(progress, offset),
        };
        download.reporter.report(offset, None, true);
        self.attempts(&mut download).await?;
        let Download {
            offset,
            total,
            hasher,
            mut reporter,
            ..
        } = download;
        reporter.report(offset, total.or(Some(offset)), true);
        Ok((hex(&hasher.finalize()), resumed_from))
    }

    /// Runs attempts until one completes the file, a failure is fatal (the partial file is
    /// discarded) or the retry budget is spent (the partial file stays, to resume later).
    async fn attempts(&self, download: &mut Download<'_, '_>) -> Result<(), ImageError> {
        let mut failures = 0u32;
        loop {
            match download.attempt(self).await {
                Ok(()) => return Ok(()),
                Err(AttemptError::Fatal(e)) => {
                    download.partial.discard();
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
                    let (url, offset) = (download.url, download.offset);
                    tracing::warn!(url, offset, attempt = failures, error = %error, "download interrupted; retrying");
                    tokio::time::sleep(self.http.retry_delay).await;
                }
            }
        }
    }
}

/// A download in progress: what is in the partial file and what the server said about it.
struct Download<'a, 'p> {
    /// The URL.
    url: &'a str,
    /// The files of the import.
    partial: &'a Partial,
    /// What the partial file was downloaded from (saved on every full response).
    meta: PartialMeta,
    /// Bytes in the partial file.
    offset: u64,
    /// Size of the whole file, when the server said.
    total: Option<u64>,
    /// Hash of the bytes in the partial file.
    hasher: Sha256,
    /// Progress reports.
    reporter: Reporter<'p>,
}

/// What to do with a response after its status and headers.
enum Body {
    /// Append the body to the partial file.
    Read,
    /// The partial file already holds the whole content.
    Complete,
}

impl Download<'_, '_> {
    /// One HTTP request: appends what it receives to the partial file and the hash.
    async fn attempt(&mut self, lib: &ImageLibrary) -> Result<(), AttemptError> {
        let url = self.url;
        let mut response =
            self.request(lib)?
                .send()
                .await
                .map_err(|source| AttemptError::Retry {
                    error: ImageError::Transfer {
                        url: url.to_owned(),
                        source,
                    },
                    progressed: false,
                })?;
        match self.accept(&response)? {
            Body::Complete => Ok(()),
            Body::Read => self.receive(&mut response).await,
        }
    }

    /// The request: a range from the current offset when resuming, valid only while the
    /// content is the one the partial file came from.
    fn request(&self, lib: &ImageLibrary) -> Result<reqwest::RequestBuilder, AttemptError> {
        let url = self.url;
        let offset = self.offset;
        let mut request = lib.client(url).map_err(AttemptError::Fatal)?.get(url);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
            if let Some(v) = self.meta.validator() {
                request = request.header(IF_RANGE, v);
            }
        }
        Ok(request)
    }

    /// Judges a response's status and headers: whether its body continues the partial file,
    /// replaces it, or the attempt ends here.
    fn accept(&mut self, response: &reqwest::Response) -> Result<Body, AttemptError> {
        let url = self.url;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_range = header(CONTENT_RANGE);
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let (start, len) = parse_content_range(content_range.as_deref());
                if start != Some(self.offset) {
                    self.restart()?;
                    return Err(AttemptError::retry_status(url, status));
                }
                self.total = len;
            }
            StatusCode::OK => {
                if self.offset > 0 {
                    tracing::info!(url, "server sent the whole file; starting over");
                    self.restart()?;
                }
                self.total = response.content_length();
                self.meta = PartialMeta {
                    url: url.to_owned(),
                    etag: header(ETAG),
                    last_modified: header(LAST_MODIFIED),
                };
                self.save_meta()?;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if self.offset > 0 => {
                // Complete already when the server's size is what we have.
                let (_, len) = parse_content_range(content_range.as_deref());
                if len == Some(self.offset) {
                    self.total = len;
                    return Ok(Body::Complete);
                }
                self.restart()?;
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
        Ok(Body::Read)
    }

    /// Appends the response body to the partial file and the hash; the attempt succeeds when the
    /// body ends with the whole file.
    async fn receive(&mut self, response: &mut reqwest::Response) -> Result<(), AttemptError> {
        let partial = self.partial;
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
        let start = self.offset;
        let body = loop {
            let next = response.chunk();
            tokio::pin!(next);
            let item = loop {
                tokio::select! {
                    item = &mut next => break item,
                    () = tokio::time::sleep(PROGRESS_EVERY) => self.reporter.flush(),
                }
            };
            match item {
                Ok(Some(chunk)) => {
                    file.write_all(&chunk).await.map_err(io_err("write"))?;
                    self.hasher.update(&chunk);
                    self.offset += chunk.len() as u64;
                    self.reporter.report(self.offset, self.total, false);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        file.flush().await.map_err(io_err("write"))?;
        file.sync_all().await.map_err(io_err("sync"))?;
        let progressed = self.offset > start;
        if let Err(source) = body {
            return Err(AttemptError::Retry {
                error: ImageError::Transfer {
                    url: self.url.to_owned(),
                    source,
                },
                progressed,
            });
        }
        if let Some(expected) = self.total
            && self.offset != expected
        {
            return Err(AttemptError::Retry {
                error: ImageError::Incomplete {
                    url: self.url.to_owned(),
                    got: self.offset,
                    expected,
                },
                progressed,
            });
        }
        Ok(())
    }

    /// Starts the file over: empties the partial file and the hash.
    fn restart(&mut self) -> Result<(), AttemptError> {
        self.offset = 0;
        self.hasher = Sha256::new();
        truncate(&self.partial.part).map_err(AttemptError::Fatal)
    }

    /// Saves what the partial file is downloaded from, for a later import to resume against.
    fn save_meta(&self) -> Result<(), AttemptError> {
        let bytes = serde_json::to_vec(&self.meta).unwrap_or_default();
        std::fs::write(&self.partial.meta, bytes)
            .map_err(|e| AttemptError::Fatal(ImageError::io("write", &self.partial.meta)(e)))
    }
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
    /// A retryable failure on an HTTP status, before any byte arrived.
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
pub(super) fn parse_content_range(value: Option<&str>) -> (Option<u64>, Option<u64>) {
    let Some(rest) = value.and_then(|v| v.trim().strip_prefix("bytes ")) else {
        return (None, None);
    };
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range
        .split_once('-')
        .and_then(|(s, _)| s.trim().parse().ok());
    (start, total.trim().parse().ok())
}
