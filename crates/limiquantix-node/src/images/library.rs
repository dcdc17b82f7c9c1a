//! The library itself: its directory, listing, lookup and deletion.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ImageError;
use super::format::{HEADER_LEN, ImageFormat, detect};
use super::name::{stem, validate_name};

/// Name of the directory, inside the library, that holds imports in progress.
pub const PARTIAL_DIR: &str = ".partial";

/// One image of the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// The image's name (its file name).
    pub name: String,
    /// Absolute path of the file.
    pub path: PathBuf,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Format detected from the header.
    pub format: ImageFormat,
}

/// Tunables of HTTP imports.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// How many times a failed transfer is retried (resuming) before the import gives up.
    pub retries: u32,
    /// Pause between retries.
    pub retry_delay: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            retries: 5,
            retry_delay: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// The image library rooted at a directory.
#[derive(Clone, Debug)]
pub struct ImageLibrary {
    /// The images directory.
    pub(super) dir: PathBuf,
    /// Download settings.
    pub(super) http: HttpOptions,
    /// Built on the first download (loading the system's CA roots costs a few milliseconds).
    pub(super) client: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl ImageLibrary {
    /// Opens (creating when missing) the library at `dir` with default HTTP options.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ImageError> {
        Self::with_http_options(dir, HttpOptions::default())
    }

    /// Opens (creating when missing) the library at `dir`.
    pub fn with_http_options(
        dir: impl Into<PathBuf>,
        http: HttpOptions,
    ) -> Result<Self, ImageError> {
        let dir: PathBuf = dir.into();
        let partial = dir.join(PARTIAL_DIR);
        std::fs::create_dir_all(&partial).map_err(ImageError::io("create", &partial))?;
        let dir = dir
            .canonicalize()
            .map_err(ImageError::io("resolve", &dir))?;
        Ok(ImageLibrary {
            dir,
            http,
            client: Default::default(),
        })
    }

    /// The HTTP client of downloads.
    pub(super) fn client(&self, url: &str) -> Result<&reqwest::Client, ImageError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.http.connect_timeout)
            .read_timeout(self.http.read_timeout)
            .user_agent(concat!("limiquantix-node/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ImageError::Transfer {
                url: url.to_owned(),
                source,
            })?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The library directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn partial_dir(&self) -> PathBuf {
        self.dir.join(PARTIAL_DIR)
    }

    /// Lists the images, sorted by name: every regular file of the directory except hidden ones.
    pub fn list(&self) -> Result<Vec<ImageEntry>, ImageError> {
        let read_err = ImageError::io("read directory", &self.dir);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(ImageError::io("read directory", &self.dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_name(&name).is_err() {
                continue;
            }
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    out.push(ImageEntry {
                        format: read_format(&path)?,
                        name,
                        path,
                        size_bytes: meta.len(),
                    });
                }
                Ok(_) => {}
                // Deleted while listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("inspect", &path)(e)),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Finds an image by its name, or by its name without a known extension (`noble` finds
    /// `noble.img`) when that is unique.
    pub fn get(&self, name: &str) -> Result<ImageEntry, ImageError> {
        validate_name(name)?;
        let images = self.list()?;
        if let Some(e) = images.iter().find(|e| e.name == name) {
            return Ok(e.clone());
        }
        let matches: Vec<&ImageEntry> = images.iter().filter(|e| stem(&e.name) == name).collect();
        match matches.as_slice() {
            [] => Err(ImageError::NotFound(name.to_owned())),
            [one] => Ok((*one).clone()),
            many => Err(ImageError::Ambiguous {
                name: name.to_owned(),
                matches: many
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Fails when an image of this name exists, counting names that differ only by a known
    /// extension as the same (`noble` and `noble.img` cannot both exist).
    pub(super) fn ensure_free(&self, name: &str) -> Result<(), ImageError> {
        let taken = self
            .list()?
            .into_iter()
            .any(|e| e.name == name || stem(&e.name) == stem(name));
        if taken {
            return Err(ImageError::AlreadyExists(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes an image, refused while one of `in_use` (the backing files of VM disks) is it.
    pub fn delete<P: AsRef<Path>>(
        &self,
        name: &str,
        in_use: impl IntoIterator<Item = P>,
    ) -> Result<ImageEntry, ImageError> {
        let entry = self.get(name)?;
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let used: HashSet<PathBuf> = in_use.into_iter().map(|p| canonical(p.as_ref())).collect();
        if used.contains(&canonical(&entry.path)) {
            return Err(ImageError::InUse {
                name: entry.name,
                path: entry.path,
            });
        }
        std::fs::remove_file(&entry.path).map_err(ImageError::io("delete", &entry.path))?;
        // The record of where a download came from goes with its image.
        let _ = std::fs::remove_file(self.partial_dir().join(format!("{}.origin", entry.name)));
        sync_dir(&self.dir)?;
        tracing::info!(image = %entry.name, "image deleted");
        Ok(entry)
    }
}

/// Reads a file's header and detects its format.
pub(super) fn read_format(path: &Path) -> Result<ImageFormat, ImageError> {
    use std::io::Read as _;
    let mut header = Vec::with_capacity(HEADER_LEN);
    std::fs::File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(ImageError::io("read", path))?;
    Ok(detect(&header))
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    limiquantix_fs::sync_dir(dir).map_err(|e| ImageError::io("sync", dir)(e.source))
}
