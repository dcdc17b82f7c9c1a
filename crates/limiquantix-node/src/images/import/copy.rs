//! Imports whose bytes are local: a copy of a file on the daemon's host, or an upload a client
//! streams. Both start the partial file over and hash it on the way.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::common::{ChunkStream, ImportProgress, Reporter, hex};
use super::partial::Partial;
use crate::images::error::ImageError;

/// Read buffer of local copies.
const COPY_BUF: usize = 1 << 20;

/// Writes an uploaded stream into the partial file, hashing it.
pub(super) async fn receive_upload(
    chunks: ChunkStream<'_>,
    size: Option<u64>,
    partial: &Partial,
    progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<String, ImageError> {
    use tokio_stream::StreamExt as _;
    partial.discard();
    let result = async {
        let io = |op| ImageError::io(op, partial.part.clone());
        let mut file = tokio::fs::File::create(&partial.part)
            .await
            .map_err(io("create"))?;
        let mut hasher = Sha256::new();
        let mut reporter = Reporter::new(progress, 0);
        let mut done = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|reason| ImageError::Upload { reason })?;
            file.write_all(&chunk).await.map_err(io("write"))?;
            hasher.update(&chunk);
            done += chunk.len() as u64;
            reporter.report(done, size, false);
        }
        file.sync_all().await.map_err(io("sync"))?;
        if let Some(expected) = size
            && expected != done
        {
            return Err(ImageError::Upload {
                reason: format!("received {done} of {expected} bytes"),
            });
        }
        reporter.report(done, Some(done), true);
        Ok(hex(&hasher.finalize()))
    }
    .await;
    if result.is_err() {
        partial.discard();
    }
    result
}

/// Copies a local regular file into the partial file, hashing it, off the async runtime; progress
/// crosses back through a watch channel.
pub(super) async fn copy_local(
    src: &Path,
    partial: &Partial,
    progress: &mut (dyn FnMut(&ImportProgress) + Send),
) -> Result<String, ImageError> {
    partial.discard();
    let (tx, mut rx) = tokio::sync::watch::channel(ImportProgress::default());
    let (src, part) = (src.to_path_buf(), partial.part.clone());
    let job = tokio::task::spawn_blocking(move || copy_and_hash(&src, &part, &tx));
    let mut reporter = Reporter::new(progress, 0);
    while rx.changed().await.is_ok() {
        let p = *rx.borrow_and_update();
        reporter.report(p.done, p.total, false);
    }
    let result = job
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    match result {
        Ok((sha, size)) => {
            reporter.report(size, Some(size), true);
            Ok(sha)
        }
        Err(e) => {
            partial.discard();
            Err(e)
        }
    }
}

/// Copies `src` to `part` and hashes it, publishing progress on `tx`; returns the sha256 and
/// the size.
fn copy_and_hash(
    src: &Path,
    part: &Path,
    tx: &tokio::sync::watch::Sender<ImportProgress>,
) -> Result<(String, u64), ImageError> {
    use std::io::{Read as _, Write as _};
    let invalid = |reason: &str| ImageError::InvalidSource {
        source_desc: src.display().to_string(),
        reason: reason.to_owned(),
    };
    let mut input = std::fs::File::open(src).map_err(|e| invalid(&e.to_string()))?;
    let meta = input.metadata().map_err(ImageError::io("inspect", src))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    let total = meta.len();
    let mut out = std::fs::File::create(part).map_err(ImageError::io("create", part))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUF];
    let mut done = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::io("read", src)(e)),
        };
        out.write_all(&buf[..n])
            .map_err(ImageError::io("write", part))?;
        hasher.update(&buf[..n]);
        done += n as u64;
        tx.send_replace(ImportProgress {
            done,
            total: Some(total),
            bytes_per_sec: 0,
        });
    }
    out.sync_all().map_err(ImageError::io("sync", part))?;
    Ok((hex(&hasher.finalize()), done))
}
