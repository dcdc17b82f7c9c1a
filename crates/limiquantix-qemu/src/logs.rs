//! The last lines of a log file, read backwards in chunks so a large log is never read whole.
//! Blocking I/O: call from blocking context.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use limiquantix_vm::LogTail;

/// Size of each backwards read.
const CHUNK: u64 = 8 * 1024;

/// Reads the last `lines` lines of `path`, never more than `max_bytes` of it (a longer tail is
/// cut at a line start and flagged `truncated`). A missing file gives an empty tail.
pub fn tail(path: &Path, lines: usize, max_bytes: u64) -> std::io::Result<LogTail> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogTail {
                path: path.to_owned(),
                ..LogTail::default()
            });
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let size = meta.len();
    let modified = meta.modified().ok();
    if lines == 0 || size == 0 {
        return Ok(LogTail {
            path: path.to_owned(),
            truncated: size > 0,
            size,
            modified,
            ..LogTail::default()
        });
    }

    // Walk back from the end collecting chunks until `lines` newlines precede the tail (a
    // newline ending the file does not start a line), or the byte budget is spent.
    let floor = size.saturating_sub(max_bytes);
    let mut pos = size;
    let mut buf: Vec<u8> = Vec::new();
    let mut newlines = 0usize;
    let mut start = None;
    while pos > floor && start.is_none() {
        let len = CHUNK.min(pos - floor);
        pos -= len;
        let mut chunk = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk)?;
        for i in (0..chunk.len()).rev() {
            let absolute = pos + i as u64;
            if chunk[i] == b'\n' && absolute != size - 1 {
                newlines += 1;
                if newlines == lines {
                    start = Some(absolute + 1);
                    break;
                }
            }
        }
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let from = match start {
        Some(s) => s,
        None if pos == 0 => 0,
        // Out of budget: drop the partial first line.
        None => match buf.iter().position(|&b| b == b'\n') {
            Some(i) => pos + i as u64 + 1,
            None => size,
        },
    };
    let bytes = &buf[(from - pos) as usize..];
    let count = bytes.iter().filter(|&&b| b == b'\n').count()
        + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
    Ok(LogTail {
        path: path.to_owned(),
        text: String::from_utf8_lossy(bytes).into_owned(),
        lines: count as u32,
        truncated: from > 0,
        size,
        modified,
    })
}

/// The last `n` bytes of a file; a missing file is empty.
pub async fn file_tail(path: &std::path::Path, n: usize) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata().await?.len();
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    let start = len.saturating_sub(n);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut out = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.take(n).read_to_end(&mut out).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), content).unwrap();
        f
    }

    #[test]
    fn last_lines_of_a_small_file() {
        let f = write(b"a\nb\nc\n");
        let t = tail(f.path(), 2, 1 << 20).unwrap();
        assert_eq!(t.text, "b\nc\n");
        assert_eq!(t.lines, 2);
        assert!(t.truncated);
        let t = tail(f.path(), 10, 1 << 20).unwrap();
        assert_eq!(t.text, "a\nb\nc\n");
        assert_eq!(t.lines, 3);
        assert!(!t.truncated);
    }

    #[test]
    fn a_last_line_without_newline_counts() {
        let f = write(b"a\nb\nc");
        let t = tail(f.path(), 2, 1 << 20).unwrap();
        assert_eq!(t.text, "b\nc");
        assert_eq!(t.lines, 2);
    }

    #[test]
    fn lines_spanning_chunk_boundaries() {
        let mut content = Vec::new();
        for i in 0..10_000 {
            content.extend_from_slice(format!("line {i:05}\n").as_bytes());
        }
        let f = write(&content);
        let t = tail(f.path(), 1000, 1 << 20).unwrap();
        assert_eq!(t.lines, 1000);
        assert!(t.text.starts_with("line 09000\n"));
        assert!(t.text.ends_with("line 09999\n"));
        assert!(t.truncated);
        assert_eq!(t.size, content.len() as u64);
    }

    #[test]
    fn the_byte_budget_cuts_at_a_line_start() {
        let f = write(b"0123456789\nabcdefghij\nklm\n");
        let t = tail(f.path(), 100, 8).unwrap();
        assert_eq!(t.text, "klm\n");
        assert!(t.truncated);
    }

    #[test]
    fn missing_and_empty_files() {
        assert_eq!(
            tail(Path::new("/nonexistent/log"), 5, 100).unwrap(),
            LogTail {
                path: "/nonexistent/log".into(),
                ..LogTail::default()
            }
        );
        let f = write(b"");
        let t = tail(f.path(), 5, 100).unwrap();
        assert_eq!((t.text.as_str(), t.lines, t.truncated), ("", 0, false));
    }

    #[tokio::test]
    async fn file_tail_takes_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        assert!(file_tail(&path, 10).await.unwrap().is_empty());
        std::fs::write(&path, b"0123456789abcdef").unwrap();
        assert_eq!(file_tail(&path, 4).await.unwrap(), b"cdef");
        assert_eq!(file_tail(&path, 100).await.unwrap(), b"0123456789abcdef");
    }
}
