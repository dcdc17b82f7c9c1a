//! What is mounted where, from `/proc/self/mountinfo` (see proc(5)).
//!
//! Each line reads `id parent major:minor root mount_point mount_options [optional fields...] -
//! fstype source super_options`; spaces, tabs, newlines and backslashes inside fields are written
//! as octal escapes (`\040`, `\011`, `\012`, `\134`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::error::NfsError;

/// The mount table of this process's mount namespace.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One mount, as `/proc/self/mountinfo` describes it (escapes decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type (`nfs4`, `tmpfs`, `fuse.sshfs`, ...).
    pub fstype: String,
    /// The mount source (`server:/export` for NFS; `none` and the like for virtual filesystems).
    pub source: String,
    /// The per-mount options (`rw,relatime`).
    pub options: String,
    /// The filesystem's own options (for NFS: `vers=4.2,rsize=...,addr=...`).
    pub super_options: String,
}

/// Parses mountinfo text, in order (later lines are mounts made later, stacked on top of earlier
/// ones at the same mount point). Lines that do not have the expected fields are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    // id, parent id, major:minor, root
    for _ in 0..4 {
        fields.next()?;
    }
    let mount_point = fields.next()?;
    let options = fields.next()?;
    // optional fields (shared:N, master:N, ...) up to the "-" separator
    while fields.next()? != "-" {}
    let fstype = fields.next()?;
    let source = fields.next()?;
    let super_options = fields.next()?;
    if mount_point.is_empty() || fstype.is_empty() {
        return None;
    }
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fstype: text(fstype),
        source: text(source),
        options: text(options),
        super_options: text(super_options),
    })
}

fn text(field: &str) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

/// Decodes the kernel's `\ooo` octal escapes; a backslash not followed by three octal digits is
/// kept as it is.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3' // fits in a byte
        });
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The topmost mount at exactly `mount_point` (the last one listed), if any; paths are compared
/// byte for byte.
pub fn find_mount<'a>(entries: &'a [MountEntry], mount_point: &Path) -> Option<&'a MountEntry> {
    entries
        .iter()
        .rev()
        .find(|e| e.mount_point.as_os_str() == mount_point.as_os_str())
}

/// Reads and parses [`MOUNTINFO`]. Blocking (a read of a small `/proc` file that never waits on a
/// network filesystem); from async code call it through `spawn_blocking`.
pub fn read_mountinfo() -> Result<Vec<MountEntry>, NfsError> {
    let bytes = std::fs::read(MOUNTINFO).map_err(|source| NfsError::Io {
        path: MOUNTINFO.into(),
        source,
    })?;
    Ok(parse_mountinfo(&String::from_utf8_lossy(&bytes)))
}
