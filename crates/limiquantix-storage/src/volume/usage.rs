//! How full a pool is: the filesystem's figures (`statvfs`) and what its volumes take and were
//! promised (thin qcow2 volumes take only what was written).

use super::files::list_volumes;
use std::path::Path;

/// Capacity of the filesystem holding `path`: (total, available to users, used) bytes; `None`
/// when it cannot be read (blocking).
pub fn filesystem_usage(path: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain old data, filled by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frag = s.f_frsize as u64;
    let total = s.f_blocks as u64 * frag;
    let free = s.f_bfree as u64 * frag;
    let avail = s.f_bavail as u64 * frag;
    Some((total, avail, total.saturating_sub(free)))
}

/// A pool's capacity figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// The filesystem's size.
    pub total: u64,
    /// Bytes still available to the daemon on it.
    pub available: u64,
    /// Bytes used on it (by anything).
    pub used: u64,
    /// Bytes the pool's volumes take on disk.
    pub allocated: u64,
    /// Bytes the pool's volumes may grow to (their virtual sizes).
    pub provisioned: u64,
    /// Number of volumes.
    pub volumes: u32,
}

/// The figures of the pool in `dir`; `None` when the directory cannot be read (blocking).
pub fn pool_usage(dir: &Path) -> Option<PoolUsage> {
    let (total, available, used) = filesystem_usage(dir)?;
    let volumes = list_volumes(dir).ok()?;
    Some(PoolUsage {
        total,
        available,
        used,
        allocated: volumes.iter().map(|v| v.allocated).sum(),
        provisioned: volumes.iter().map(|v| v.virtual_size).sum(),
        volumes: u32::try_from(volumes.len()).unwrap_or(u32::MAX),
    })
}
