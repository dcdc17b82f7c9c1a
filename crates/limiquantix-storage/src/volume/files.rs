//! Volume files: where a volume lives in its pool and what its header says. Blocking I/O.

use super::id::VolumeId;
use super::snapshots::read_snapshot_names;
use crate::error::StorageError;
use crate::format::{DetectedFormat, detect_format};
use limiquantix_vm::model::DiskFormat;
use std::path::{Path, PathBuf};

/// One volume, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Its id (the file name without extension).
    pub id: String,
    /// Its file.
    pub path: PathBuf,
    /// Its format.
    pub format: DiskFormat,
    /// Guest-visible size.
    pub virtual_size: u64,
    /// Bytes it takes on disk.
    pub allocated: u64,
    /// The image it is an overlay on.
    pub backing_file: Option<PathBuf>,
    /// Its internal snapshots, by name.
    pub snapshots: Vec<String>,
}

/// The file of volume `id` in `dir`: `<id>.qcow2`, or `<id>.img` for a raw volume.
pub fn volume_file(dir: &Path, id: &VolumeId, format: DiskFormat) -> PathBuf {
    dir.join(format!("{id}.{}", format.extension()))
}

/// The file of an existing volume `id` in `dir`, if any (a regular file, never a symlink, so
/// a volume cannot point out of its pool).
pub fn find_volume(dir: &Path, id: &VolumeId) -> Option<PathBuf> {
    [DiskFormat::Qcow2, DiskFormat::Raw]
        .into_iter()
        .map(|f| volume_file(dir, id, f))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
}

/// Reads the volume whose file is `path`.
pub fn read_volume(path: &Path) -> Result<VolumeInfo, StorageError> {
    use std::os::unix::fs::MetadataExt as _;
    let detected = detect_format(path)?;
    let meta = std::fs::metadata(path).map_err(|source| StorageError::Io {
        path: path.to_owned(),
        source,
    })?;
    let (backing_file, snapshots) = match &detected {
        DetectedFormat::Qcow2(h) => (
            h.backing_path().map(Path::to_owned),
            read_snapshot_names(path)?,
        ),
        DetectedFormat::Raw { .. } => (None, Vec::new()),
    };
    Ok(VolumeInfo {
        id: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_owned(),
        format: detected.format(),
        virtual_size: detected.virtual_size(),
        allocated: meta.blocks() * 512,
        backing_file,
        snapshots,
    })
}

/// Every volume directly in `dir` (files `<id>.qcow2` / `<id>.img` with a valid id), sorted by
/// id. A file that cannot be read as an image is left out and logged.
pub fn list_volumes(dir: &Path) -> Result<Vec<VolumeInfo>, StorageError> {
    let read = std::fs::read_dir(dir).map_err(|source| StorageError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in read.flatten() {
        let path = entry.path();
        let is_volume = entry.file_type().is_ok_and(|t| t.is_file())
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("qcow2" | "img")
            )
            && path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| VolumeId::parse("", s).is_ok());
        if !is_volume {
            continue;
        }
        match read_volume(&path) {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "not a readable volume"),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
