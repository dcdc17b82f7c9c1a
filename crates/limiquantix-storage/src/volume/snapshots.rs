//! Native reader of a qcow2 image's internal snapshot names (the snapshot table), so listing a
//! pool runs no `qemu-img` per volume. Every length is bounded by the file and the spec's
//! limits: a hostile file gives an error, never a panic or a huge allocation.

use crate::error::StorageError;
use crate::qcow2::MAGIC;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Most snapshots a qcow2 image may have (QEMU's limit).
const MAX_SNAPSHOTS: u32 = 65_536;
/// Most bytes of snapshot table read.
const MAX_TABLE: u64 = 64 << 20;
/// The fixed part of one table entry.
const ENTRY_FIXED: usize = 40;

/// The names of the internal snapshots of the qcow2 image at `path`, in table order; empty for
/// a raw image (blocking I/O).
pub fn read_snapshot_names(path: &Path) -> Result<Vec<String>, StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_owned(),
        source,
    };
    let bad = |problem: String| StorageError::Unreadable {
        path: path.to_owned(),
        problem,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 72];
    if f.read_exact(&mut head).is_err() || head[..4] != MAGIC {
        return Ok(Vec::new());
    }
    let count = u32::from_be_bytes(head[60..64].try_into().unwrap_or_default());
    let offset = u64::from_be_bytes(head[64..72].try_into().unwrap_or_default());
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_SNAPSHOTS {
        return Err(bad(format!("{count} snapshots is more than qcow2 allows")));
    }
    let len = f.metadata().map_err(io)?.len();
    if offset >= len {
        return Err(bad(format!("snapshot table at {offset} is past the end")));
    }
    let mut table = Vec::new();
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    f.take((len - offset).min(MAX_TABLE))
        .read_to_end(&mut table)
        .map_err(io)?;
    parse_table(&table, count).map_err(bad)
}

/// The names of `count` entries of a snapshot table.
fn parse_table(table: &[u8], count: u32) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(count.min(1024) as usize);
    let mut at = 0usize;
    for i in 0..count {
        let fixed = table
            .get(at..at + ENTRY_FIXED)
            .ok_or_else(|| format!("snapshot {i} is truncated"))?;
        let id_len = usize::from(u16::from_be_bytes([fixed[12], fixed[13]]));
        let name_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        let extra = u32::from_be_bytes([fixed[36], fixed[37], fixed[38], fixed[39]]) as usize;
        let name_at = at + ENTRY_FIXED + extra + id_len;
        let name = table
            .get(name_at..name_at + name_len)
            .ok_or_else(|| format!("snapshot {i}'s name is truncated"))?;
        names.push(String::from_utf8_lossy(name).into_owned());
        let end = name_at + name_len;
        at = end.div_ceil(8) * 8;
    }
    Ok(names)
}
