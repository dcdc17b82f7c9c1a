//! Atomic files: `vm.json` and the small runtime-state file.
//!
//! Every write goes to a temporary file in the same directory, is flushed with `fsync`, renamed
//! over the target, and the directory is synced, so a crash leaves either the old or the new
//! content, never a torn file. These functions block: call them from `spawn_blocking`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use limiquantix_vm::model::{SCHEMA_VERSION, VmDefinition};

/// A persistence failure.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading, writing or syncing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing a file failed.
    #[error(transparent)]
    Write(#[from] limiquantix_fs::FsError),
    /// The file is not valid JSON of the expected shape.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file was written by a build with another schema version.
    #[error(
        "{}: schema_version {found} is not supported (this build reads version {supported})",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically and durably with the given permission bits.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PersistError> {
    Ok(limiquantix_fs::write_atomic(path, bytes, mode)?)
}

/// `fsync` of a directory, so a rename or an unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    Ok(limiquantix_fs::sync_dir(dir)?)
}

/// Writes a VM definition as pretty JSON (mode 0600).
pub fn save_definition(path: &Path, def: &VmDefinition) -> Result<(), PersistError> {
    let mut bytes = serde_json::to_vec_pretty(def).map_err(|e| PersistError::Invalid {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, 0o600)
}

/// Reads a VM definition, checking its schema version before its shape.
pub fn load_definition(path: &Path) -> Result<VmDefinition, PersistError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let invalid = |problem: String| PersistError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    let found = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("schema_version is missing or not a number".into()))?;
    if found != u64::from(SCHEMA_VERSION) {
        return Err(PersistError::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a QEMU process of a VM ended, as recorded in [`RuntimeRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// The guest shut down (QMP `SHUTDOWN` seen) or a stop was requested.
    Clean,
    /// The process ended any other way.
    Crashed,
}

/// The small runtime-state file next to the sockets: which QEMU runs the VM, and whether its
/// end was clean. A restarted backend reads it to re-adopt the process, or to tell a clean
/// shutdown from a crash that happened while nobody watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeRecord {
    /// The QEMU process id.
    pub pid: u32,
    /// When QEMU was started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Set once the guest shut down or a stop was requested: the process is expected to end.
    #[serde(default)]
    pub shutdown_requested: bool,
    /// How the process ended, once it did.
    #[serde(default)]
    pub exit: Option<ExitKind>,
}

/// Writes the runtime record (mode 0600), atomically but without `fsync`: it describes running
/// processes, which a power cut ends anyway, and it is written while QEMU starts, whose own file
/// creations would otherwise wait behind the journal commit an `fsync` forces.
pub fn save_runtime(path: &Path, rec: &RuntimeRecord) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec(rec).map_err(|e| PersistError::Invalid {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    Ok(limiquantix_fs::write_replace(path, &bytes, 0o600, false)?)
}

/// Reads the runtime record; `None` when there is none.
pub fn load_runtime(path: &Path) -> Result<Option<RuntimeRecord>, PersistError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| PersistError::Invalid {
                path: path.to_owned(),
                problem: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use limiquantix_vm::model::VmId;

    fn def() -> VmDefinition {
        VmDefinition::new(
            VmId::parse("6f1c2a4e-8d1b-4c3e-9a7f-0123456789ab").unwrap(),
            "web1",
            256,
        )
    }

    #[test]
    fn definition_round_trips_with_private_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.json");
        save_definition(&path, &def()).unwrap();
        assert_eq!(load_definition(&path).unwrap(), def());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Overwrite: still one file, the new content.
        let mut d2 = def();
        d2.name = "web2".into();
        save_definition(&path, &d2).unwrap();
        assert_eq!(load_definition(&path).unwrap().name, "web2");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["vm.json"]);
    }

    #[test]
    fn another_schema_version_is_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.json");
        std::fs::write(&path, r#"{"schema_version": 99, "something": "new"}"#).unwrap();
        match load_definition(&path) {
            Err(PersistError::UnsupportedVersion {
                found, supported, ..
            }) => {
                assert_eq!(found, 99);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        std::fs::write(&path, r#"{"name": "x"}"#).unwrap();
        let err = load_definition(&path).unwrap_err();
        assert!(err.to_string().contains("schema_version"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            load_definition(&path),
            Err(PersistError::Invalid { .. })
        ));
    }

    #[test]
    fn runtime_record_round_trips_and_absent_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.json");
        assert_eq!(load_runtime(&path).unwrap(), None);
        let rec = RuntimeRecord {
            pid: 42,
            started_at_ms: 1,
            shutdown_requested: true,
            exit: Some(ExitKind::Clean),
        };
        save_runtime(&path, &rec).unwrap();
        assert_eq!(load_runtime(&path).unwrap(), Some(rec));
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("vm.json");
        let err = save_definition(&path, &def()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
