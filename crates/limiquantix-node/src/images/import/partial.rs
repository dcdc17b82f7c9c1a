//! The files of an import in progress in `.partial/` (content, resume metadata, lock), and the
//! last step of every import: checking the complete file and linking it into place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::images::error::ImageError;
use crate::images::format::{HEADER_LEN, check_importable};
use crate::images::library::sync_dir;
use crate::images::library::{ImageEntry, ImageLibrary};

/// What the library remembers about a partial download, to resume it only against the same URL
/// and the same content.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct PartialMeta {
    /// The URL downloaded.
    pub(super) url: String,
    /// The server's `ETag` of the content.
    pub(super) etag: Option<String>,
    /// The server's `Last-Modified` of the content.
    pub(super) last_modified: Option<String>,
}

impl PartialMeta {
    /// The `If-Range` validator: a strong ETag, else the Last-Modified date.
    pub(super) fn validator(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if !etag.starts_with("W/") => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// Files of one import in `.partial/`.
#[derive(Clone)]
pub(super) struct Partial {
    /// The content received so far.
    pub(super) part: PathBuf,
    /// The [`PartialMeta`] of a download, as JSON.
    pub(super) meta: PathBuf,
    /// Locked while an import of the name runs.
    pub(super) lock: PathBuf,
}

impl Partial {
    /// The files of importing `name`, in the partial directory `dir`.
    pub(super) fn new(dir: &Path, name: &str) -> Self {
        Partial {
            part: dir.join(format!("{name}.part")),
            meta: dir.join(format!("{name}.meta")),
            lock: dir.join(format!("{name}.lock")),
        }
    }

    /// Removes the content and metadata files (the lock stays with its holder).
    pub(super) fn discard(&self) {
        for p in [&self.part, &self.meta] {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove partial import file");
            }
        }
    }
}

impl ImageLibrary {
    /// Checks the format of a complete partial file and links it into place without replacing
    /// anything; the partial file is removed.
    pub(super) fn publish(&self, name: &str, part: &Path) -> Result<ImageEntry, ImageError> {
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
        let mut header = Vec::with_capacity(HEADER_LEN);
        (&file)
            .take(HEADER_LEN as u64)
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
        sync_dir(&self.dir)?;
        Ok(ImageEntry {
            name: name.to_owned(),
            path,
            size_bytes,
            format,
        })
    }
}

/// Empties the file at `path` (creating it when missing).
pub(super) fn truncate(path: &Path) -> Result<(), ImageError> {
    std::fs::File::create(path)
        .map(drop)
        .map_err(ImageError::io("truncate", path))
}

/// Hashes what an earlier attempt left in the partial file; (0, empty hash) when there is none.
pub(super) fn hash_existing(part: &Path) -> Result<(u64, Sha256), ImageError> {
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
