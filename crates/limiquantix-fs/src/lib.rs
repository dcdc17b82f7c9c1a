//! Atomic file writes, the one implementation every crate of the workspace uses, and the
//! creation of private directories.
//!
//! A write goes to a temporary file in the target's directory (created with the final
//! permission bits, so the content is never readable by others, not even briefly), is flushed
//! with `fsync`, renamed over the target, and the directory is synced: a crash leaves either the
//! old or the new content, never a torn file. Everything here blocks: call it from
//! `spawn_blocking` in async code.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file operation failed; names the file or directory.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FsError {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError {
        path: path.to_owned(),
        source,
    }
}

/// The directory a file lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically and durably, with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    write_replace(path, bytes, mode, true)
}

/// Writes `bytes` to `path` through a temporary file and a rename, with permission bits `mode`.
/// With `durable` the file and the directory are synced (the new content survives a power cut);
/// without it the replacement is still atomic for readers, but may be lost on a power cut.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<(), FsError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    if durable {
        tmp.as_file().sync_all().map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| FsError {
        path: path.to_owned(),
        source: e.error,
    })?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// `fsync` of a directory, so a rename, a link or an unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Creates `dir` and its missing parents; the ones it creates are private to the owner (mode
/// 0700, less the umask), an existing directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<(), FsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_replace_and_keep_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        write_replace(&path, b"three", 0o600, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        // Only the file itself is left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomic(&dir.path().join("missing/f"), b"x", 0o600).unwrap_err();
        assert!(e.path.ends_with("missing"), "{e}");
    }

    #[test]
    fn private_directories_are_the_owners_and_existing_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!((mode(&nested), mode(&dir.path().join("a"))), (0o700, 0o700));
        create_private_dir(&nested).unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o755);
        // A file in the way is an error naming the path.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let e = create_private_dir(&dir.path().join("file")).unwrap_err();
        assert!(e.path.ends_with("file"), "{e}");
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("seed.iso")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
    }
}
