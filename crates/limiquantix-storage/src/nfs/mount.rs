//! Mounting and unmounting a share with the util-linux programs, run under tokio with a timeout
//! and killed if the call is dropped. Mount table and directory work runs in `spawn_blocking`.
//!
//! Calls for one mount point must not run concurrently (the pool registry serializes them):
//! two `ensure_mounted` calls could both find nothing mounted and mount the share twice.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::error::NfsError;
use super::mountinfo::{MountEntry, find_mount, read_mountinfo};
use super::spec::{NfsSpec, validate_mount_point};

/// How long `mount` and `umount` may run before they are killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a failed program's output an error keeps (the end of it), in bytes.
const OUTPUT_TAIL: usize = 2048;

/// The mode of mount point directories `ensure_mounted` creates.
const MOUNT_POINT_MODE: u32 = 0o750;

/// What `ensure_mounted` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The share was already mounted there (by an earlier run or by hand); nothing was done.
    Adopted,
    /// The share was mounted now.
    Mounted,
}

/// Makes sure the share is mounted at its mount point.
///
/// If something is mounted there already, it is adopted when its source is exactly
/// [`NfsSpec::source`] (a filesystem type other than `nfs`/`nfs4` is logged as a warning: the
/// source is what identifies the share), and refused with [`NfsError::WrongMount`] otherwise,
/// changing nothing. If nothing is mounted, the mount point directory is created if missing
/// (mode 0750; it must not lead through a symlink), `mount_program` runs with
/// [`NfsSpec::mount_args`] (at most [`COMMAND_TIMEOUT`]), and the mount table is read again to
/// check the share is now on top there.
pub async fn ensure_mounted(
    spec: &NfsSpec,
    mount_program: &Path,
) -> Result<MountOutcome, NfsError> {
    let mount_point = spec.mount_point().to_owned();
    let expected = spec.source();
    let entries = blocking(read_mountinfo).await?;
    if let Some(found) = find_mount(&entries, &mount_point) {
        return adopt(found, &expected).map(|()| MountOutcome::Adopted);
    }
    let mp = mount_point.clone();
    blocking(move || prepare_mount_point(&mp)).await?;
    let args = spec.mount_args();
    let command = printable(mount_program, &args);
    let (status, output) = run(mount_program, &args, &command, COMMAND_TIMEOUT).await?;
    if !status.success() {
        return Err(NfsError::MountFailed {
            command,
            status: status.to_string(),
            output,
        });
    }
    let entries = blocking(read_mountinfo).await?;
    match find_mount(&entries, &mount_point) {
        Some(found) if found.source == expected => {
            tracing::info!(
                mount_point = %mount_point.display(),
                source = %expected,
                fstype = %found.fstype,
                "mounted NFS share"
            );
            Ok(MountOutcome::Mounted)
        }
        found => Err(NfsError::NotMountedAfter {
            command,
            mount_point,
            expected,
            found_source: found.map(|e| e.source.clone()),
        }),
    }
}

/// Adopts `found` if it is the share, or says what is there instead.
fn adopt(found: &MountEntry, expected: &str) -> Result<(), NfsError> {
    if found.source != expected {
        return Err(NfsError::WrongMount {
            mount_point: found.mount_point.clone(),
            found_source: found.source.clone(),
            found_fstype: found.fstype.clone(),
            expected: expected.to_owned(),
        });
    }
    let mount_point = found.mount_point.display();
    if found.fstype == "nfs" || found.fstype == "nfs4" {
        tracing::info!(%mount_point, source = %expected, fstype = %found.fstype, "NFS share already mounted; adopted");
    } else {
        tracing::warn!(%mount_point, source = %expected, fstype = %found.fstype, "the share's source is mounted with a filesystem type other than nfs or nfs4; adopted");
    }
    Ok(())
}

/// Creates the mount point if missing (checking first that the part of it that exists is
/// reached without symlinks, so nothing is created through one) and checks it is a directory
/// reached without symlinks: the mount table shows resolved paths, so a symlink would make the
/// check after mounting fail.
fn prepare_mount_point(mount_point: &Path) -> Result<(), NfsError> {
    let existing = mount_point
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a).is_ok())
        .unwrap_or(Path::new("/"));
    check_resolved(existing, mount_point)?;
    if existing != mount_point {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(MOUNT_POINT_MODE)
            .create(mount_point)
            .map_err(|source| NfsError::Io {
                path: mount_point.to_owned(),
                source,
            })?;
        check_resolved(mount_point, mount_point)?;
    }
    if mount_point.is_dir() {
        Ok(())
    } else {
        Err(bad_mount_point(format!(
            "{} is not a directory",
            mount_point.display()
        )))
    }
}

/// Refuses `mount_point` when `path` (it or one of its ancestors) resolves elsewhere.
fn check_resolved(path: &Path, mount_point: &Path) -> Result<(), NfsError> {
    let resolved = std::fs::canonicalize(path).map_err(|source| NfsError::Io {
        path: path.to_owned(),
        source,
    })?;
    if resolved == path {
        return Ok(());
    }
    Err(bad_mount_point(format!(
        "{} leads through a symlink ({} is {})",
        mount_point.display(),
        path.display(),
        resolved.display()
    )))
}

fn bad_mount_point(problem: String) -> NfsError {
    NfsError::Invalid {
        field: "config.nfs.mount_point",
        problem,
        allowed: "use a directory, or a path to create, that does not lead through a symlink",
    }
}

/// Unmounts whatever is mounted on top at `mount_point` with `umount_program <mount_point>` (at
/// most [`COMMAND_TIMEOUT`]). Nothing mounted there is success without running anything, so a
/// repeated call is harmless. If another mount shows there afterwards (mounts were stacked), that
/// is [`NfsError::StillMountedAfter`].
pub async fn unmount(mount_point: &Path, umount_program: &Path) -> Result<(), NfsError> {
    validate_mount_point(mount_point)?;
    let entries = blocking(read_mountinfo).await?;
    let Some(found) = find_mount(&entries, mount_point) else {
        tracing::debug!(mount_point = %mount_point.display(), "nothing mounted; nothing to unmount");
        return Ok(());
    };
    let source = found.source.clone();
    let args = [mount_point.as_os_str().to_owned()];
    let command = printable(umount_program, &args);
    let (status, output) = run(umount_program, &args, &command, COMMAND_TIMEOUT).await?;
    if !status.success() {
        return Err(NfsError::UnmountFailed {
            command,
            status: status.to_string(),
            output,
        });
    }
    let entries = blocking(read_mountinfo).await?;
    if let Some(still) = find_mount(&entries, mount_point) {
        return Err(NfsError::StillMountedAfter {
            command,
            mount_point: mount_point.to_owned(),
            found_source: still.source.clone(),
        });
    }
    tracing::info!(mount_point = %mount_point.display(), %source, "unmounted");
    Ok(())
}

/// Runs `program args` (no shell, stdin closed) for at most `timeout`, killing it when the time
/// is up; returns its exit status and the end of its error output (or of its standard output
/// when it wrote no errors).
pub(super) async fn run(
    program: &Path,
    args: &[OsString],
    command: &str,
    timeout: Duration,
) -> Result<(ExitStatus, String), NfsError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, output).await {
        Err(_elapsed) => {
            return Err(NfsError::Timeout {
                command: command.to_owned(),
                after: timeout,
            });
        }
        Ok(result) => result.map_err(|source| NfsError::Spawn {
            command: command.to_owned(),
            source,
        })?,
    };
    let text = match tail(&out.stderr) {
        t if !t.is_empty() => t,
        _ => tail(&out.stdout),
    };
    let text = if text.is_empty() {
        "no output".to_owned()
    } else {
        text
    };
    Ok((out.status, text))
}

/// The last [`OUTPUT_TAIL`] bytes of `bytes` as text, trimmed, starting at a character boundary.
pub(super) fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= OUTPUT_TAIL {
        return text.to_owned();
    }
    let mut start = text.len() - OUTPUT_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", text[start..].trim_start())
}

/// The command line for messages: arguments with characters a shell would read specially are
/// single-quoted.
pub(super) fn printable(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let a = a.to_string_lossy();
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./:=,@%+-".contains(c));
            if plain {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs blocking work (mount table reads, directory creation) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NfsError> + Send + 'static,
) -> Result<T, NfsError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NfsError::Task(e.to_string()))?
}
