//! Imports into the library: a copy of a local file or an HTTP(S) download, hashed on the way,
//! checked, then linked into place.
//!
//! This module holds the entry points ([`ImageLibrary::import`],
//! [`ImageLibrary::import_cancellable`], [`ImageLibrary::upload`]); `copy` fills the partial file
//! from a local file or an upload, `download` from HTTP(S) with resume, `partial` owns the
//! partial files and the final link into place, and `cancel` the handle that stops an import.

mod cancel;
mod common;
mod copy;
mod download;
mod origin;
mod partial;

use std::path::{Path, PathBuf};

use super::error::ImageError;
use super::library::{ImageEntry, ImageLibrary};
use super::name::{derive_name, validate_name};
pub use cancel::{CancelOutcome, ImportCancel};
pub use common::{ChunkStream, ImportProgress};
pub(in crate::images) use common::{blocking, parse_sha256};
use copy::{copy_local, receive_upload};
use origin::{Origin, origin_path};
use partial::Partial;

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

impl ImageLibrary {
    /// Imports an image. The content is hashed on the way; it becomes visible in the library only
    /// after the checksum (when given) and the format check pass. `progress` is called during the
    /// transfer, at most every 100 ms, and once at the end.
    pub async fn import(
        &self,
        request: ImportRequest,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        self.import_from(request, None, progress).await
    }

    /// [`ImageLibrary::import`] that `cancel` can stop: a cancelled import ends with
    /// [`ImageError::Cancelled`] and removes its partial files (no resume), unless it had already
    /// begun publishing the image, which `cancel` then reports as too late.
    pub async fn import_cancellable(
        &self,
        request: ImportRequest,
        cancel: &ImportCancel,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        self.import_from(request, Some(cancel), progress).await
    }

    async fn import_from(
        &self,
        request: ImportRequest,
        cancel: Option<&ImportCancel>,
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
        let sha256 = request.sha256.as_deref();
        self.import_with(&name, sha256, fill, cancel, progress)
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
        let fill = Fill::Upload { chunks, size };
        self.import_with(name, sha256, fill, None, progress).await
    }

    async fn import_with(
        &self,
        name: &str,
        sha256: Option<&str>,
        fill: Fill<'_>,
        cancel: Option<&ImportCancel>,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        let name = name.to_owned();
        validate_name(&name)?;
        let expected = sha256.map(parse_sha256).transpose()?;
        let lib = self.clone();
        let n = name.clone();
        blocking(move || lib.ensure_free(&n)).await?;

        let partial = Partial::new(&self.partial_dir(), &name);
        let lock = std::fs::File::create(&partial.lock)
            .map_err(ImageError::io("create", &partial.lock))?;
        if lock.try_lock().is_err() {
            return Err(ImageError::Busy(name));
        }
        tracing::info!(image = %name, source = %fill.describe(), "image import started");
        let run = self.import_locked(fill, &name, expected, &partial, cancel, progress);
        let result = match cancel {
            // Biased: once cancelled, the import is not polled again (it is dropped here).
            Some(c) => tokio::select! {
                biased;
                () = c.cancelled() => Err(ImageError::Cancelled(name.clone())),
                r = run => r,
            },
            None => run.await,
        };
        let cancelled = matches!(result, Err(ImageError::Cancelled(_)));
        let files = partial.clone();
        let _ = blocking(move || {
            if cancelled {
                files.discard();
            }
            let _ = std::fs::remove_file(&files.lock);
            Ok(())
        })
        .await;
        drop(lock);
        match &result {
            Ok(o) => {
                tracing::info!(image = %name, bytes = o.image.size_bytes, sha256 = %o.sha256, "image imported")
            }
            Err(ImageError::Cancelled(_)) => {
                tracing::info!(image = %name, "image import cancelled; partial files removed")
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
        cancel: Option<&ImportCancel>,
        progress: &mut (dyn FnMut(&ImportProgress) + Send),
    ) -> Result<ImportOutcome, ImageError> {
        let url = match &fill {
            Fill::Url(u) => Some((*u).to_owned()),
            _ => None,
        };
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
        // From here on the image is published; a cancel that came first wins instead.
        if cancel.is_some_and(|c| !c.commit()) {
            return Err(ImageError::Cancelled(name.to_owned()));
        }
        let lib = self.clone();
        let files = partial.clone();
        let origin = url.map(|url| Origin {
            url,
            sha256: sha256.clone(),
        });
        let name = name.to_owned();
        let image = blocking(move || {
            // Before the link: a restart that finds the image knows where it came from.
            if let Some(o) = &origin {
                files.write_origin(&name, o)?;
            }
            let result = lib.publish(&name, &files.part);
            if result.is_err() {
                if origin.is_some() {
                    let _ = std::fs::remove_file(origin_path(&lib.partial_dir(), &name));
                }
                files.discard();
            } else {
                let _ = std::fs::remove_file(&files.meta);
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
}

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

#[cfg(test)]
mod unit_tests {
    use super::download::parse_content_range;
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
