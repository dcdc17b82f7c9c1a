//! Where a downloaded image came from: `<images>/.partial/<name>.origin` (the URL and the sha256
//! of the content), written just before the image is linked into place. A download job that
//! the daemon's death interrupted after the link, before its end was recorded, is recognised by
//! it: [`ImageLibrary::verify_published`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::common::{hex, parse_sha256};
use super::{ImportOutcome, Partial};
use crate::images::error::ImageError;
use crate::images::library::{ImageEntry, ImageLibrary, read_format};
use crate::images::name::validate_name;

/// The origin record of a published download.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Origin {
    /// The URL downloaded.
    pub(super) url: String,
    /// sha256 of the content published (lowercase hex).
    pub(super) sha256: String,
}

/// The origin file of image `name` in the partial directory `dir`.
pub(super) fn origin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.origin"))
}

impl Partial {
    /// Records that the content about to be published as `name` was downloaded from `url`.
    pub(super) fn write_origin(&self, name: &str, origin: &Origin) -> Result<(), ImageError> {
        let path = origin_path(self.part.parent().unwrap_or(Path::new(".")), name);
        let bytes = serde_json::to_vec(origin).unwrap_or_default();
        limiquantix_fs::write_atomic(&path, &bytes, 0o644)
            .map_err(|e| ImageError::io("write", &path)(e.source))
    }
}

impl ImageLibrary {
    /// Checks that image `name`, found in place, is what a download of `url` published: its
    /// content hashes to `sha256` when given; without one, the library recorded publishing it
    /// from `url` with this content. Blocking (hashes the whole file).
    pub fn verify_published(
        &self,
        name: &str,
        url: &str,
        sha256: Option<&str>,
    ) -> Result<ImportOutcome, ImageError> {
        validate_name(name)?;
        let expected = sha256.map(parse_sha256).transpose()?;
        let path = self.dir.join(name);
        let meta = std::fs::symlink_metadata(&path).map_err(ImageError::io("inspect", &path))?;
        let unverified = |reason: String| ImageError::Unverified {
            name: name.to_owned(),
            reason,
        };
        if !meta.is_file() {
            return Err(unverified("it is not a regular file".into()));
        }
        let actual = hash_file(&path)?;
        let wanted = match expected {
            Some(sha) => sha,
            None => {
                let file = origin_path(&self.partial_dir(), name);
                let origin: Origin = std::fs::read(&file)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| {
                        unverified(format!(
                            "the library has no record of downloading it from {url}"
                        ))
                    })?;
                if origin.url != url {
                    return Err(unverified(format!(
                        "it was downloaded from {}, not {url}",
                        origin.url
                    )));
                }
                origin.sha256
            }
        };
        if actual != wanted {
            return Err(unverified(format!(
                "its sha256 is {actual}, expected {wanted}"
            )));
        }
        Ok(ImportOutcome {
            image: ImageEntry {
                name: name.to_owned(),
                format: read_format(&path)?,
                path,
                size_bytes: meta.len(),
            },
            sha256: actual,
            resumed_from: 0,
        })
    }
}

/// sha256 of a whole file (lowercase hex).
fn hash_file(path: &Path) -> Result<String, ImageError> {
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path).map_err(ImageError::io("open", path))?;
    std::io::copy(&mut f, &mut hasher).map_err(ImageError::io("read", path))?;
    Ok(hex(&hasher.finalize()))
}
