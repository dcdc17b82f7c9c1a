//! Full copies of images into new qcow2 volumes (`qemu-img convert -p`), with progress and
//! nothing left behind on failure: the copy is written to a hidden partial file beside the
//! destination and linked into place only when complete (never over an existing file).

use super::ops::{probe, qemu_img};
use crate::create::blocking;
use crate::error::StorageError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

/// What a copy reads.
#[derive(Debug, Clone)]
pub struct CopySource {
    /// The image file.
    pub path: PathBuf,
    /// An internal snapshot of it to copy instead of its current content.
    pub snapshot: Option<String>,
}

/// Removes the partial file unless disarmed.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Copies `src` (qcow2 or raw, detected; its backing chain flattened) into a new, independent
/// qcow2 image `dst`, then grows it to `size` when that is larger than the source. `progress`
/// gets the percentage done as `qemu-img` reports it. Returns the new image's virtual size.
pub async fn copy_to_qcow2(
    qemu_img_bin: &Path,
    src: &CopySource,
    dst: &Path,
    size: Option<u64>,
    mut progress: impl FnMut(f32) + Send,
) -> Result<u64, StorageError> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Err(StorageError::AlreadyExists {
            path: dst.to_owned(),
        });
    }
    let (format, source_size) = probe(&src.path).await?;
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dst.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&tmp);
    let mut guard = Partial(Some(tmp.clone()));
    let mut cmd = Command::new(qemu_img_bin);
    cmd.args(["convert", "-p", "-f", format.qemu_name(), "-O", "qcow2"]);
    if let Some(snap) = &src.snapshot {
        cmd.arg("-l").arg(format!("snapshot.name={snap}"));
    }
    cmd.arg(&src.path).arg(&tmp);
    run_with_progress(qemu_img_bin, cmd, &mut progress).await?;
    let mut final_size = source_size;
    if let Some(size) = size.filter(|s| *s > source_size) {
        let s = size.to_string();
        qemu_img(
            qemu_img_bin,
            &[
                "resize".as_ref(),
                "-q".as_ref(),
                "-f".as_ref(),
                "qcow2".as_ref(),
                tmp.as_os_str(),
                s.as_ref(),
            ],
        )
        .await?;
        final_size = size;
    }
    let (t, d) = (tmp.clone(), dst.to_owned());
    blocking(move || {
        let placed = (|| {
            std::fs::File::open(&t).and_then(|f| f.sync_all())?;
            // A hard link never replaces an existing file, unlike a rename.
            std::fs::hard_link(&t, &d)?;
            std::fs::remove_file(&t)?;
            limiquantix_fs::sync_dir(d.parent().unwrap_or(Path::new("/"))).map_err(|e| e.source)
        })();
        placed.map_err(|source| StorageError::Io { path: d, source })
    })
    .await?;
    guard.0 = None;
    progress(100.0);
    Ok(final_size)
}

/// Runs `cmd` (a `qemu-img convert -p`), feeding `progress` from its `(NN.NN/100%)` lines.
async fn run_with_progress(
    program: &Path,
    mut cmd: Command,
    progress: &mut (impl FnMut(f32) + Send),
) -> Result<(), StorageError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| StorageError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| StorageError::Task("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| StorageError::Task("no stderr".into()))?;
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut buf = [0u8; 512];
    let mut line = String::new();
    while let Ok(n) = stdout.read(&mut buf).await {
        if n == 0 {
            break;
        }
        for c in String::from_utf8_lossy(&buf[..n]).chars() {
            if c == '\r' || c == '\n' {
                if let Some(p) = parse_progress(&line) {
                    progress(p);
                }
                line.clear();
            } else {
                line.push(c);
            }
        }
    }
    let status = child.wait().await.map_err(|source| StorageError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    let stderr = err_task.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(StorageError::QemuImg {
            status: status.to_string(),
            stderr: stderr.trim().to_owned(),
        })
    }
}

/// The percentage of a `qemu-img -p` line, `    (42.17/100%)`.
pub(super) fn parse_progress(line: &str) -> Option<f32> {
    let inner = line.trim().strip_prefix('(')?.strip_suffix("/100%)")?;
    inner.parse().ok()
}
